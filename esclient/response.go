package esclient

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// ResponseError is Elasticsearch refusing a request replaylink made: the
// shipper's set-up, a data stream overwrite, node discovery. Its text starts
// with "ship: " because the shipper, set-up and check print it as it is.
type ResponseError struct {
	Op     string // what replaylink was doing
	Status int
	Type   string // Elasticsearch's error type, e.g. security_exception
	Reason string
}

func (e *ResponseError) Error() string {
	hint := ""
	switch e.Status {
	case http.StatusUnauthorized:
		hint = " (check --es-api-key or --es-username/--es-password)"
	case http.StatusForbidden:
		hint = " (the credentials lack a privilege: see 'replaylink setup --api-keys')"
	}
	return fmt.Sprintf("ship: %s: %d %s: %s%s", e.Op, e.Status, e.Type, e.Reason, hint)
}

// NewResponseError reads Elasticsearch's error answer body (status) to the
// request made for op.
func NewResponseError(op string, status int, body []byte) *ResponseError {
	var r struct {
		Error json.RawMessage `json:"error"`
	}
	e := &ResponseError{Op: op, Status: status}
	if json.Unmarshal(body, &r) == nil && len(r.Error) > 0 {
		var detail struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		}
		if json.Unmarshal(r.Error, &detail) == nil {
			e.Type, e.Reason = detail.Type, detail.Reason
		} else {
			json.Unmarshal(r.Error, &e.Reason) // Elasticsearch before 5: a string
		}
	}
	if e.Reason == "" {
		e.Reason = string(body[:min(len(body), 200)])
	}
	return e
}
