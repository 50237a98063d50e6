package ship

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/replaylink/replaylink/esclient"
)

// DataStreamName is the data stream written to with Target.DataStream. Its
// name follows Elastic's logs-<dataset>-<namespace> scheme.
const DataStreamName = "logs-replaylink-default"

// templatePriority beats Elasticsearch's built-in logs-*-* template (100).
const templatePriority = 200

// Target is where documents are written and what OpenReplay searches.
//
// By default (DataStream false) it is the plain index Index ("logs").
// With DataStream, documents go to the data stream DataStreamName
// (logs-replaylink-<Namespace>, Namespace "default" unless set), and
// Index becomes an alias of it so that OpenReplay, which searches exactly
// "logs", finds them. Elasticsearch (7.14 and later) has aliases of data
// streams; OpenSearch 2.x has not, so there the alias is put on every
// backing index through the template, which covers rollovers too.
type Target struct {
	Index      string
	DataStream bool
	Namespace  string
	Replicas   Replicas // of the indices the template makes
}

// Replicas is how many replica shards the index template gives each index:
// a fixed number, or (the zero value) one that suits the cluster when the
// template is installed: 0 with one data node, where a replica could never
// be assigned and the cluster would stay yellow; 1 with several, so that
// losing a node loses no document.
type Replicas struct {
	n   int
	set bool
}

// FixedReplicas is n replicas whatever the cluster (--es-replicas N).
func FixedReplicas(n int) Replicas { return Replicas{n: n, set: true} }

// resolve returns the number of replicas for a cluster of dataNodes.
func (r Replicas) resolve(dataNodes int) int {
	switch {
	case r.set:
		return r.n
	case dataNodes > 1:
		return 1
	default:
		return 0
	}
}

// DataStreamName is the name of the data stream used with DataStream.
func (t Target) DataStreamName() string {
	if t.Namespace == "" {
		return DataStreamName
	}
	return "logs-replaylink-" + t.Namespace
}

// WriteName is the name bulk requests write to.
func (t Target) WriteName() string {
	if t.DataStream {
		return t.DataStreamName()
	}
	return t.Index
}

// TemplateName is the name of the index template InstallTemplate manages.
func (t Target) TemplateName() string {
	return "replaylink-" + t.WriteName()
}

func (t Target) validate() error {
	name := t.Index
	bad := name == "" || name == "." || name == ".." || len(name) > 255 ||
		strings.ContainsAny(name, `\/*?"<>| ,#:`) || strings.ToLower(name) != name ||
		strings.IndexAny(name[:1], "-_+") == 0
	if bad {
		return fmt.Errorf("ship: --index %q is not a valid index name: lowercase, no spaces or any of \\/*?\"<>|,#:, not starting with - _ +", name)
	}
	if t.DataStream && (name == t.DataStreamName() || strings.ContainsAny(t.Namespace, `\/*?"<>| ,#:-`) || strings.ToLower(t.Namespace) != t.Namespace) {
		return fmt.Errorf("ship: --index %q with data stream %q: the alias needs another name than the data stream, and the namespace is lowercase without - or punctuation", name, t.DataStreamName())
	}
	return nil
}

// InstallTemplate installs or updates the composable index template for t,
// and reports whether it changed anything: the template carries a digest of
// its content in _meta, so a second call with the same replaylink version
// only reads. It needs the manage_index_templates cluster privilege.
func InstallTemplate(ctx context.Context, c esapi.Transport, t Target) (changed bool, err error) {
	if err := t.validate(); err != nil {
		return false, err
	}
	openSearch := false
	if t.DataStream {
		if openSearch, err = isOpenSearch(ctx, c); err != nil {
			return false, err
		}
		if err := checkAliasFree(ctx, c, t.Index, t.DataStreamName()); err != nil {
			return false, err
		}
	}
	replicas := t.Replicas.n
	if !t.Replicas.set {
		nodes, err := dataNodes(ctx, c)
		if err != nil {
			return false, err
		}
		replicas = t.Replicas.resolve(nodes)
	}
	body, digest := templateBody(t, openSearch, replicas)

	res, err := esapi.IndicesGetIndexTemplateRequest{Name: t.TemplateName()}.Do(ctx, c)
	if err != nil {
		return false, fmt.Errorf("ship: read index template %s: %w", t.TemplateName(), err)
	}
	status, resp, err := readResponse(res)
	if err != nil {
		return false, err
	}
	switch {
	case status == http.StatusOK:
		var got struct {
			IndexTemplates []struct {
				IndexTemplate struct {
					Meta struct {
						Digest string `json:"digest"`
					} `json:"_meta"`
				} `json:"index_template"`
			} `json:"index_templates"`
		}
		if json.Unmarshal(resp, &got) == nil && len(got.IndexTemplates) == 1 &&
			got.IndexTemplates[0].IndexTemplate.Meta.Digest == digest {
			return false, nil
		}
	case status != http.StatusNotFound:
		return false, esclient.NewResponseError("read index template "+t.TemplateName(), status, resp)
	}

	res, err = esapi.IndicesPutIndexTemplateRequest{Name: t.TemplateName(), Body: bytes.NewReader(body)}.Do(ctx, c)
	if err != nil {
		return false, fmt.Errorf("ship: install index template %s: %w", t.TemplateName(), err)
	}
	if status, resp, err = readResponse(res); err != nil {
		return false, err
	}
	if status != http.StatusOK {
		return false, esclient.NewResponseError("install index template "+t.TemplateName(), status, resp)
	}
	return true, nil
}

// EnsureWriteTarget creates what bulk requests write to, after
// InstallTemplate, and reports whether it changed anything: the index
// (which bulk requests would also create), or the data stream and its
// alias. An existing index keeps the mapping it was created with.
func EnsureWriteTarget(ctx context.Context, c esapi.Transport, t Target) (changed bool, err error) {
	if err := t.validate(); err != nil {
		return false, err
	}
	if !t.DataStream {
		return ensureIndex(ctx, c, t.Index)
	}
	openSearch, err := isOpenSearch(ctx, c)
	if err != nil {
		return false, err
	}
	ds := t.DataStreamName()
	if err := checkAliasFree(ctx, c, t.Index, ds); err != nil {
		return false, err
	}
	created, err := ensureDataStream(ctx, c, ds)
	if err != nil {
		return false, err
	}
	aliased, err := ensureAlias(ctx, c, t.Index, ds, openSearch)
	return created || aliased, err
}

func ensureIndex(ctx context.Context, c esapi.Transport, index string) (bool, error) {
	res, err := esapi.IndicesExistsRequest{Index: []string{index}}.Do(ctx, c)
	if err != nil {
		return false, fmt.Errorf("ship: look for index %s: %w", index, err)
	}
	status, resp, err := readResponse(res)
	if err != nil || status == http.StatusOK {
		return false, err
	}
	if status != http.StatusNotFound {
		return false, esclient.NewResponseError("look for index "+index, status, resp)
	}
	res, err = esapi.IndicesCreateRequest{Index: index}.Do(ctx, c)
	if err != nil {
		return false, fmt.Errorf("ship: create index %s: %w", index, err)
	}
	if status, resp, err = readResponse(res); err != nil {
		return false, err
	}
	if status == http.StatusBadRequest && bytes.Contains(resp, []byte("resource_already_exists_exception")) {
		return false, nil // created meanwhile, by a bulk request or another replica
	}
	if status != http.StatusOK {
		return false, esclient.NewResponseError("create index "+index, status, resp)
	}
	return true, nil
}

func ensureDataStream(ctx context.Context, c esapi.Transport, ds string) (bool, error) {
	res, err := esapi.IndicesGetDataStreamRequest{Name: []string{ds}}.Do(ctx, c)
	if err != nil {
		return false, fmt.Errorf("ship: look for data stream %s: %w", ds, err)
	}
	status, resp, err := readResponse(res)
	if err != nil || status == http.StatusOK {
		return false, err
	}
	if status != http.StatusNotFound {
		return false, esclient.NewResponseError("look for data stream "+ds, status, resp)
	}
	res, err = esapi.IndicesCreateDataStreamRequest{Name: ds}.Do(ctx, c)
	if err != nil {
		return false, fmt.Errorf("ship: create data stream %s: %w", ds, err)
	}
	if status, resp, err = readResponse(res); err != nil {
		return false, err
	}
	if status == http.StatusBadRequest && bytes.Contains(resp, []byte("already_exists")) {
		return false, nil
	}
	if status != http.StatusOK {
		return false, esclient.NewResponseError("create data stream "+ds, status, resp)
	}
	return true, nil
}

// ensureAlias makes alias point at the data stream: on Elasticsearch as a
// data stream alias (the write alias), on OpenSearch on its backing indices
// (the template adds it to later ones).
func ensureAlias(ctx context.Context, c esapi.Transport, alias, ds string, openSearch bool) (bool, error) {
	res, err := esapi.IndicesGetAliasRequest{Name: []string{alias}}.Do(ctx, c)
	if err != nil {
		return false, fmt.Errorf("ship: look for alias %s: %w", alias, err)
	}
	status, resp, err := readResponse(res)
	if err != nil {
		return false, err
	}
	switch status {
	case http.StatusOK:
		// Keys are the data stream (Elasticsearch) or its backing indices
		// (OpenSearch, and Elasticsearch before data stream aliases).
		if bytes.Contains(resp, []byte(`"`+ds+`"`)) || bytes.Contains(resp, []byte(`".ds-`+ds+`-`)) {
			return false, nil
		}
	case http.StatusNotFound:
	default:
		return false, esclient.NewResponseError("look for alias "+alias, status, resp)
	}
	action := map[string]any{"index": ds, "alias": alias, "is_write_index": true}
	if openSearch {
		action = map[string]any{"index": ".ds-" + ds + "-*", "alias": alias}
	}
	body, _ := json.Marshal(map[string]any{"actions": []any{map[string]any{"add": action}}})
	res, err = esapi.IndicesUpdateAliasesRequest{Body: bytes.NewReader(body)}.Do(ctx, c)
	if err != nil {
		return false, fmt.Errorf("ship: add alias %s: %w", alias, err)
	}
	if status, resp, err = readResponse(res); err != nil {
		return false, err
	}
	if status != http.StatusOK {
		return false, esclient.NewResponseError("add alias "+alias+" to "+ds, status, resp)
	}
	return true, nil
}

// checkAliasFree fails when a concrete index (or data stream) holds the
// name the data stream's alias needs, typically a "logs" index from before
// the switch to --data-stream.
func checkAliasFree(ctx context.Context, c esapi.Transport, alias, ds string) error {
	res, err := esapi.IndicesGetAliasRequest{Name: []string{alias}}.Do(ctx, c)
	if err != nil {
		return fmt.Errorf("ship: look for alias %s: %w", alias, err)
	}
	if st, _, err := readResponse(res); err != nil || st == http.StatusOK {
		return err
	}
	res, err = esapi.IndicesExistsRequest{Index: []string{alias}}.Do(ctx, c)
	if err != nil {
		return fmt.Errorf("ship: look for index %s: %w", alias, err)
	}
	if st, _, err := readResponse(res); err != nil || st != http.StatusOK {
		return err
	}
	return fmt.Errorf("ship: an index named %s exists, and --data-stream needs that name for an alias of %s: reindex it into the data stream and delete it, or run without --data-stream", alias, ds)
}

// isOpenSearch asks the node what it is.
func isOpenSearch(ctx context.Context, c esapi.Transport) (bool, error) {
	res, err := esapi.InfoRequest{}.Do(ctx, c)
	if err != nil {
		return false, fmt.Errorf("ship: ask the node what it is: %w", err)
	}
	status, resp, err := readResponse(res)
	if err != nil {
		return false, err
	}
	if status != http.StatusOK {
		return false, esclient.NewResponseError("ask the node what it is", status, resp)
	}
	var info struct {
		Version struct {
			Distribution string `json:"distribution"`
		} `json:"version"`
	}
	json.Unmarshal(resp, &info)
	return info.Version.Distribution == "opensearch", nil
}

// dataNodes asks the cluster how many data nodes it has.
func dataNodes(ctx context.Context, c esapi.Transport) (int, error) {
	res, err := esapi.ClusterHealthRequest{FilterPath: []string{"number_of_data_nodes"}}.Do(ctx, c)
	if err != nil {
		return 0, fmt.Errorf("ship: read cluster health: %w", err)
	}
	status, resp, err := readResponse(res)
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, esclient.NewResponseError("read cluster health", status, resp)
	}
	var h struct {
		DataNodes int `json:"number_of_data_nodes"`
	}
	json.Unmarshal(resp, &h)
	return h.DataNodes, nil
}

// templateBody returns the template for t and the digest of its content.
func templateBody(t Target, openSearch bool, replicas int) (body []byte, digest string) {
	tmpl := map[string]any{
		"settings": map[string]any{
			// A malformed number or date loses that field, not the document.
			"index.mapping.ignore_malformed": true,
			"index.number_of_replicas":       replicas,
		},
		"mappings": documentMappings,
	}
	patterns := []string{t.Index}
	doc := map[string]any{"index_patterns": patterns, "priority": templatePriority, "template": tmpl}
	if t.DataStream {
		doc["index_patterns"] = []string{t.DataStreamName()}
		doc["data_stream"] = map[string]any{}
		if openSearch {
			tmpl["aliases"] = map[string]any{t.Index: map[string]any{}}
		}
	}
	content, _ := json.Marshal(doc)
	sum := sha256.Sum256(content)
	digest = hex.EncodeToString(sum[:16])
	doc["_meta"] = map[string]any{"managed_by": "replaylink", "digest": digest}
	body, _ = json.Marshal(doc)
	return body, digest
}

// documentMappings maps the fields enrich writes (docs/document-format.md),
// each one explicitly: keyword for ids, names and codes, text for what
// people read, dates for both timestamps. What costs the search node CPU
// per document without serving a search is left out (issue 17; the
// figures are in docs/benchmarks.md, "The index template's choices"):
//
//   - unknown fields are kept in _source but not indexed (dynamic: false):
//     replaylink writes no field the template does not name;
//   - the long payloads (error.stack_trace, event.original,
//     http.response.body.content) are kept in _source but not indexed:
//     people read them in a document they found by its message, error or
//     session;
//   - ids and free-form keywords that no aggregation or sort needs
//     (http.request.id, trace.id, span.id, url.query, user_agent.original,
//     replaylink.candidates) have no doc values: they are searched for,
//     never counted;
//   - message and error.message have no norms: log search ranks by time,
//     not by relevance, and match_phrase does not use them.
//
// client.ip is a keyword rather than ECS's ip type: one odd value must not
// send a whole document to the dead-letter file.
var documentMappings = map[string]any{
	"dynamic": false,
	"properties": map[string]any{
		"@timestamp": field("date"),
		"utc_time":   field("date"),
		"message":    withoutNorms(field("text")),
		"level":      field("keyword"),
		"tags":       field("keyword"),
		"openReplaySession": object(map[string]any{
			"id":     field("keyword"),
			"source": field("keyword"),
		}),
		"replaylink": object(map[string]any{
			"attribution":      field("keyword"),
			"candidates":       searchOnly(field("keyword")),
			"merged_by":        field("keyword"),
			"stream":           field("keyword"),
			"upstream":         field("keyword"),
			"truncated":        field("boolean"),
			"truncated_fields": field("keyword"),
		}),
		"event": object(map[string]any{
			"dataset":  field("keyword"),
			"duration": field("long"),
			"original": notIndexed(),
		}),
		"http": object(map[string]any{
			"request": object(map[string]any{
				"method": field("keyword"),
				"id":     searchOnly(field("keyword")),
				"bytes":  field("long"),
			}),
			"response": object(map[string]any{
				"status_code": field("integer"),
				"bytes":       field("long"),
				"body":        object(map[string]any{"content": notIndexed()}),
			}),
		}),
		"url": object(map[string]any{
			"path":  map[string]any{"type": "keyword", "ignore_above": 4096},
			"query": searchOnly(map[string]any{"type": "keyword", "ignore_above": 4096}),
		}),
		"client":     object(map[string]any{"ip": field("keyword")}),
		"user_agent": object(map[string]any{"original": searchOnly(map[string]any{"type": "keyword", "ignore_above": 1024})}),
		"trace":      object(map[string]any{"id": searchOnly(field("keyword"))}),
		"span":       object(map[string]any{"id": searchOnly(field("keyword"))}),
		"service":    object(map[string]any{"name": field("keyword")}),
		"host":       object(map[string]any{"name": field("keyword")}),
		"log": object(map[string]any{
			"logger": field("keyword"),
			"level":  field("keyword"),
			"file":   object(map[string]any{"path": field("keyword")}),
		}),
		"error": object(map[string]any{
			"type":        field("keyword"),
			"message":     withoutNorms(field("text")),
			"stack_trace": notIndexed(),
		}),
	},
}

func field(typ string) map[string]any { return map[string]any{"type": typ} }

func object(props map[string]any) map[string]any { return map[string]any{"properties": props} }

// searchOnly is a keyword found by term queries that nothing aggregates or
// sorts on: no doc values.
func searchOnly(m map[string]any) map[string]any { m["doc_values"] = false; return m }

func withoutNorms(m map[string]any) map[string]any { m["norms"] = false; return m }

// notIndexed is a text kept in _source only.
func notIndexed() map[string]any { return map[string]any{"type": "text", "index": false} }

func readResponse(res *esapi.Response) (int, []byte, error) {
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("ship: read response: %w", err)
	}
	return res.StatusCode, b, nil
}
