package app

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latch-dev/latch/fault"
)

// validator is implemented by request bodies that check themselves after
// decoding; it returns every problem found.
type validator interface {
	validate() []fault.Detail
}

// bindJSON decodes a JSON object body into dst strictly: the content type
// must be JSON, unknown fields and trailing data are refused, and type
// errors name the field. Then dst validates itself.
func bindJSON(c echo.Context, dst validator) error {
	ct, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if ct != echo.MIMEApplicationJSON {
		return fault.Invalid(fault.Detail{Field: "body", Message: "Content-Type must be application/json"})
	}
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, reflect.TypeOf(dst))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fault.Invalid(fault.Detail{Field: "body", Message: "must contain a single JSON object"})
	}
	if details := dst.validate(); len(details) > 0 {
		return fault.Invalid(details...)
	}
	return nil
}

// decodeError turns a JSON decoding failure into a 400 naming the field.
func decodeError(err error, dst reflect.Type) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return fault.New(codeBodyTooLarge, http.StatusRequestEntityTooLarge, "the request body is too large")
	case errors.As(err, &te):
		field := jsonPath(dst, te.Field)
		if field == "" {
			field = "body"
		}
		return fault.Invalid(fault.Detail{Field: field, Message: "must be " + jsonType(te.Type.Kind().String())})
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return fault.Invalid(fault.Detail{Field: "body", Message: "is not valid JSON"})
	case errors.Is(err, io.EOF):
		return fault.Invalid(fault.Detail{Field: "body", Message: "is required"})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return fault.Invalid(fault.Detail{Field: name, Message: "is not a known field"})
	default:
		return fault.Invalid(fault.Detail{Field: "body", Message: "is not a valid JSON object"})
	}
}

// jsonPath turns the path of a decoding error into the JSON field path the
// client sent: encoding/json names an embedded struct by its Go type name
// ("tokenRequest.client_attributes"), which means nothing to a client.
func jsonPath(t reflect.Type, path string) string {
	if path == "" {
		return ""
	}
	var out []string
	for _, seg := range strings.Split(path, ".") {
		for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map) {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct {
			out, t = append(out, seg), nil
			continue
		}
		if sf, ok := t.FieldByName(seg); ok && sf.Anonymous {
			t = sf.Type
			continue
		}
		var next reflect.Type
		for _, sf := range reflect.VisibleFields(t) {
			if name, _, _ := strings.Cut(sf.Tag.Get("json"), ","); name == seg && !sf.Anonymous {
				next = sf.Type
				break
			}
		}
		out, t = append(out, seg), next
	}
	return strings.Join(out, ".")
}

func jsonType(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int64", "int32", "uint8", "uint32", "float64":
		return "a number"
	case "slice":
		return "an array"
	default:
		return "an object"
	}
}

// fields collects validation problems.
type fields []fault.Detail

func (f *fields) add(field, format string, args ...any) {
	*f = append(*f, fault.Detail{Field: field, Message: fmt.Sprintf(format, args...)})
}

// required adds a problem when v is empty.
func (f *fields) required(field, v string) {
	if v == "" {
		f.add(field, "is required")
	}
}

// maxLen adds a problem when v is longer than n bytes.
func (f *fields) maxLen(field, v string, n int) {
	if len(v) > n {
		f.add(field, "must be at most %d characters", n)
	}
}

// hasBody reports whether a request carries a non-empty body, peeking at
// its first byte when the length is unknown (chunked) without losing it.
func hasBody(c echo.Context) bool {
	r := c.Request()
	switch {
	case r.ContentLength > 0:
		return true
	case r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody:
		return false
	}
	br := bufio.NewReader(r.Body)
	if _, err := br.Peek(1); err != nil {
		return false
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{br, r.Body}
	return true
}
