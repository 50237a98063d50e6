package ship

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/replaylink/replaylink/esclient"
)

// A replacement into a data stream. Data streams take the create action
// only, and a create is unique per backing index only. So before a
// replacement (Shipper.Replace) is sent, the worker looks for its original
// in the backing indices (bulkWorker.replaceInPlace): when it is there,
// dataStreamOverwrite writes the replacement over it where it is, with a
// conditional index request on the backing index (if_seq_no,
// if_primary_term), the one write a data stream allows on an existing
// document. Otherwise the replacement goes as a create: it is indexed, and
// the original, arriving later, meets it as a 409; or the original got in
// meanwhile, the create meets it as a 409, and the overwrite follows
// (bulkWorker.overwrite). The condition makes the write safe against a
// concurrent write of the same _id (a retry, a replay): on a conflict it
// reads again and writes again. Every way, the _id holds one document, the
// replacement. Left open: an original that is not yet shipped when a
// rollover happens between the replacement's create and its own lands in
// the new backing index beside it.

// maxOverwriteConflicts bounds the read-write rounds of one overwrite:
// each conflict is another writer of the same _id, which are at most a
// retry or a replay of this very replacement.
const maxOverwriteConflicts = 5

// errOriginalGone: no backing index holds the _id any more (deleted by
// retention meanwhile); there is nothing to replace.
var errOriginalGone = errors.New("the original is in no backing index")

// dataStreamOverwrite writes source over the document id of the data
// stream ds, in the backing index that holds it.
func dataStreamOverwrite(ctx context.Context, c esapi.Transport, ds string, id, source []byte) error {
	for range maxOverwriteConflicts {
		index, seqNo, primaryTerm, err := findInDataStream(ctx, c, ds, string(id))
		if err != nil {
			return err
		}
		res, err := esapi.IndexRequest{
			Index: index, DocumentID: string(id), Body: bytes.NewReader(source),
			IfSeqNo: &seqNo, IfPrimaryTerm: &primaryTerm,
		}.Do(ctx, c)
		if err != nil {
			return fmt.Errorf("overwrite %s in %s: %w", id, index, err)
		}
		status, body, err := readResponse(res)
		switch {
		case err != nil:
			return err
		case status == http.StatusConflict:
			continue // written meanwhile: read again
		case status >= 300:
			return esclient.NewResponseError("overwrite "+string(id)+" in "+index, status, body)
		}
		return nil
	}
	return fmt.Errorf("overwrite %s in %s: %d conflicting writes in a row", id, ds, maxOverwriteConflicts)
}

// findInDataStream finds the backing index of ds holding id, newest first,
// with realtime gets (a document just indexed is not searchable yet, but a
// get sees it), and the sequence number and primary term it has there.
func findInDataStream(ctx context.Context, c esapi.Transport, ds, id string) (index string, seqNo, primaryTerm int, err error) {
	res, err := esapi.IndicesGetDataStreamRequest{Name: []string{ds}}.Do(ctx, c)
	if err != nil {
		return "", 0, 0, fmt.Errorf("read data stream %s: %w", ds, err)
	}
	status, body, err := readResponse(res)
	if err != nil {
		return "", 0, 0, err
	}
	if status != http.StatusOK {
		return "", 0, 0, esclient.NewResponseError("read data stream "+ds, status, body)
	}
	var got struct {
		DataStreams []struct {
			Indices []struct {
				Name string `json:"index_name"`
			} `json:"indices"`
		} `json:"data_streams"`
	}
	if err := json.Unmarshal(body, &got); err != nil || len(got.DataStreams) != 1 {
		return "", 0, 0, fmt.Errorf("read data stream %s: unexpected answer %.200s", ds, body)
	}
	indices := got.DataStreams[0].Indices
	for i := len(indices) - 1; i >= 0; i-- {
		name := indices[i].Name
		res, err := esapi.GetRequest{Index: name, DocumentID: id, Source: []string{"false"}}.Do(ctx, c)
		if err != nil {
			return "", 0, 0, fmt.Errorf("get %s from %s: %w", id, name, err)
		}
		status, body, err := readResponse(res)
		if err != nil {
			return "", 0, 0, err
		}
		if status == http.StatusNotFound {
			continue
		}
		if status != http.StatusOK {
			return "", 0, 0, esclient.NewResponseError("get "+id+" from "+name, status, body)
		}
		var doc struct {
			SeqNo       *int `json:"_seq_no"`
			PrimaryTerm *int `json:"_primary_term"`
		}
		if json.Unmarshal(body, &doc) != nil || doc.SeqNo == nil || doc.PrimaryTerm == nil {
			return "", 0, 0, fmt.Errorf("get %s from %s: no _seq_no/_primary_term in %.200s", id, name, body)
		}
		return name, *doc.SeqNo, *doc.PrimaryTerm, nil
	}
	return "", 0, 0, errOriginalGone
}
