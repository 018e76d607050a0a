package signer

import (
	"encoding/json"
	"fmt"
	"github.com/herald-webhooks/herald/internal/shared"
	"os"
	"testing"
	"time"
)

func sharedTestdata(t *testing.T, name string) string {
	t.Helper()
	return shared.TestdataPath(t, name)
}

type signatureVector struct {
	Why        string `json:"why"`
	Secret     string `json:"secret"`
	Timestamp  int64  `json:"timestamp"`
	Body       string `json:"body"`
	Header     string `json:"header"`
	Now        int64  `json:"now"`
	ToleranceS int64  `json:"tolerance_s"`
	Valid      *bool  `json:"valid"`
}

func loadVectors(t *testing.T) (valid, edge []signatureVector) {
	t.Helper()
	path := sharedTestdata(t, "signature-vectors.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var file struct {
		Valid []signatureVector `json:"valid"`
		Edge  []signatureVector `json:"edge"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	if len(file.Valid) == 0 || len(file.Edge) == 0 {
		t.Fatalf("%s: got %d valid and %d edge vectors, want some of each", path, len(file.Valid), len(file.Edge))
	}
	return file.Valid, file.Edge
}

func TestSignatureVectors(t *testing.T) {
	valid, edge := loadVectors(t)
	for i, v := range valid {
		t.Run(vectorName("valid", i, v), func(t *testing.T) {
			got := Sign([]byte(v.Body), time.Unix(v.Timestamp, 0), v.Secret)
			if got != v.Header {
				t.Errorf("Sign: got %q, want %q", got, v.Header)
			}
			err := Verify(v.Header, []byte(v.Body), []string{v.Secret}, time.Unix(v.Now, 0), time.Duration(v.ToleranceS)*time.Second)
			if err != nil {
				t.Errorf("Verify: got %v, want nil", err)
			}
		})
	}
	for i, v := range edge {
		t.Run(vectorName("edge", i, v), func(t *testing.T) {
			want := v.Valid != nil && *v.Valid
			err := Verify(v.Header, []byte(v.Body), []string{v.Secret}, time.Unix(v.Now, 0), time.Duration(v.ToleranceS)*time.Second)
			if got := err == nil; got != want {
				t.Errorf("Verify valid: got %v (err %v), want %v", got, err, want)
			}
		})
	}
}

func vectorName(kind string, i int, v signatureVector) string {
	if v.Why != "" {
		return fmt.Sprintf("%s/%d/%s", kind, i, v.Why)
	}
	return fmt.Sprintf("%s/%d", kind, i)
}
