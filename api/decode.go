package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/herald-webhooks/herald/actors/tailnet"
)

// readBody reads the request body, answering 415 for a Content-Type that is
// not JSON, 413 for a body over the limit and 400 for an empty one. It
// returns false when it has answered.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSONMediaType(ct) {
		writeError(w, http.StatusUnsupportedMediaType,
			fmt.Sprintf("Content-Type: got %s, want application/json", tailnet.Quote(ct)))
		return nil, false
	}
	if r.ContentLength > h.maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, h.tooLargeMsg())
		return nil, false
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, h.tooLargeMsg())
			return nil, false
		}
		h.log.Debug("api: reading request body", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusBadRequest, "body: cannot be read")
		return nil, false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		writeError(w, http.StatusBadRequest, "body: empty")
		return nil, false
	}
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD, storing
	// something other than what was sent.
	if !utf8.Valid(data) {
		writeError(w, http.StatusBadRequest, "body: not valid UTF-8")
		return nil, false
	}
	return data, true
}

func (h *handler) tooLargeMsg() string {
	return fmt.Sprintf("body: larger than %d bytes", h.maxBody)
}

// isJSONMediaType accepts application/json and any application/*+json,
// with or without parameters, and application/x-www-form-urlencoded: it is
// what `curl -d` sends when not told otherwise, and scripts written for
// Tailscale's API send JSON that way. The body is parsed as JSON in every
// case.
func isJSONMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch {
	case mt == "application/json", mt == "application/x-www-form-urlencoded":
		return true
	case strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"):
		return true
	}
	return false
}

// decodeBody reads the body and decodes it strictly into v (unknown fields
// and trailing data are errors), answering 4xx itself when it cannot.
func (h *handler) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	data, ok := h.readBody(w, r)
	if !ok {
		return false
	}
	if err := decodeStrict(data, v, ""); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return false
	}
	return true
}

// decodeStrict decodes exactly one JSON value from data into v, refusing
// unknown object fields. where names the value in messages: "" for the
// whole body, or a path such as "changes[3]". Its errors are safe to show
// the caller and name the offending field.
func decodeStrict(data []byte, v any, where string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, where)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s: invalid JSON: more data after the first JSON value", whole(where))
	}
	return nil
}

// whole names the value being decoded in a message.
func whole(where string) string {
	if where == "" {
		return "body"
	}
	return where
}

// jsonError rewrites an encoding/json error for the caller: no Go type
// names, and the offending field named (as a path from where).
func jsonError(err error, where string) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("%s: invalid JSON: %s (at byte %d)", whole(where), syntax.Error(), syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%s: invalid JSON: unexpected end of input", whole(where))
	case errors.As(err, &typ):
		field := typ.Field
		switch {
		case field == "":
			field = whole(where)
		case where != "":
			field = where + "." + field
		}
		return fmt.Errorf("%s: want a JSON %s, got %s", field, jsonKind(typ.Type), typ.Value)
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, "unknown field ") {
		return fmt.Errorf("%s: %s", whole(where), msg)
	}
	return fmt.Errorf("%s: invalid JSON: %s", whole(where), msg)
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// jsonKind names the JSON kind a Go type decodes from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessageType {
		return "value"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array of " + jsonKind(t.Elem()) + "s"
	case reflect.Struct, reflect.Map:
		return "object"
	}
	return "value"
}
