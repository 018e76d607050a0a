package signer

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func newTestSealer(t *testing.T, fill byte) *Sealer {
	t.Helper()
	s, err := NewSealer(bytes.Repeat([]byte{fill}, KeySize))
	if err != nil {
		t.Fatalf("NewSealer: %v", err)
	}
	return s
}

func TestSealerRoundTrip(t *testing.T) {
	s := newTestSealer(t, 1)
	tests := []struct {
		name      string
		plaintext string
		ad        []byte
	}{
		{"secret", testSecretA, []byte("ep-1")},
		{"empty plaintext", "", []byte("ep-1")},
		{"no additional data", testSecretB, nil},
		{"unicode", "café – über 🚀", []byte("ep-ü")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := s.Seal(tt.plaintext, tt.ad)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if !strings.HasPrefix(sealed, "v1:"+s.KeyID()+":") {
				t.Errorf("sealed: got %q, want prefix %q", sealed, "v1:"+s.KeyID()+":")
			}
			if tt.plaintext != "" && strings.Contains(sealed, tt.plaintext) {
				t.Errorf("sealed: got %q, want no plaintext in it", sealed)
			}
			got, err := s.Open(sealed, tt.ad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got != tt.plaintext {
				t.Errorf("Open: got %q, want %q", got, tt.plaintext)
			}
		})
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	s := newTestSealer(t, 1)
	a, _ := s.Seal(testSecretA, []byte("ep-1"))
	b, _ := s.Seal(testSecretA, []byte("ep-1"))
	if a == b {
		t.Errorf("two seals of one secret: got equal %q, want different", a)
	}
}

func TestOpenFailures(t *testing.T) {
	s := newTestSealer(t, 1)
	other := newTestSealer(t, 2)
	sealed, err := s.Seal(testSecretA, []byte("ep-1"))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	prefix := "v1:" + s.KeyID() + ":"
	payload, err := sealedEncoding.DecodeString(strings.TrimPrefix(sealed, prefix))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	tamper := func(i int) string {
		p := bytes.Clone(payload)
		p[i] ^= 0x01
		return prefix + sealedEncoding.EncodeToString(p)
	}
	tests := []struct {
		name   string
		sealer *Sealer
		sealed string
		ad     []byte
	}{
		{"wrong additional data", s, sealed, []byte("ep-2")},
		{"missing additional data", s, sealed, nil},
		{"tampered nonce", s, tamper(0), []byte("ep-1")},
		{"tampered ciphertext", s, tamper(len(payload) / 2), []byte("ep-1")},
		{"tampered tag", s, tamper(len(payload) - 1), []byte("ep-1")},
		{"truncated", s, prefix + sealedEncoding.EncodeToString(payload[:len(payload)-1]), []byte("ep-1")},
		{"too short", s, prefix + "AAAA", []byte("ep-1")},
		{"other key", other, sealed, []byte("ep-1")},
		{"other key id claimed", other, "v1:" + other.KeyID() + ":" + strings.TrimPrefix(sealed, prefix), []byte("ep-1")},
		{"unknown version", s, "v2" + strings.TrimPrefix(sealed, "v1"), []byte("ep-1")},
		{"plaintext stored", s, testSecretA, []byte("ep-1")},
		{"no key id", s, "v1:" + strings.TrimPrefix(sealed, prefix), []byte("ep-1")},
		{"bad base64", s, prefix + "!!!!", []byte("ep-1")},
		{"empty", s, "", []byte("ep-1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.sealer.Open(tt.sealed, tt.ad)
			if !errors.Is(err, ErrUnseal) {
				t.Fatalf("got (%q, %v), want an error wrapping %v", got, err, ErrUnseal)
			}
			if strings.Contains(err.Error(), testSecretA) {
				t.Errorf("got message %q, want one without the plaintext", err)
			}
		})
	}
}

func TestNewSealerKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := NewSealer(make([]byte, n)); err == nil {
			t.Errorf("NewSealer(%d bytes): got nil error, want one", n)
		}
	}
}

func TestLoadOrCreateKeyCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "data.key")
	s1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode: got %#o, want %#o", got, 0o600)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("key directory: got %v (%v), want mode 0700", fi.Mode(), err)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if len(content) != 2*KeySize+1 || content[len(content)-1] != '\n' {
		t.Errorf("key file content: got %d bytes, want %d hex digits and a newline", len(content), 2*KeySize)
	}
	if _, err := hex.DecodeString(strings.TrimSpace(string(content))); err != nil {
		t.Errorf("key file content: got %v, want hex", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("files in key directory: got %d, want 1 (no temporary left)", len(entries))
	}

	// Loading again gives the same key: what one sealed, the other opens.
	s2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	sealed, _ := s1.Seal(testSecretA, []byte("ep-1"))
	if got, err := s2.Open(sealed, []byte("ep-1")); err != nil || got != testSecretA {
		t.Errorf("open with reloaded key: got (%q, %v), want (%q, nil)", got, err, testSecretA)
	}
}

func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.key")
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := LoadOrCreateKey(path)
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
				return
			}
			ids[i] = s.KeyID()
		})
	}
	wg.Wait()
	for i := range ids {
		if ids[i] != ids[0] {
			t.Errorf("caller %d key id: got %q, want %q (one key for all)", i, ids[i], ids[0])
		}
	}
}

func TestLoadOrCreateKeyReadsOperatorKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	path := filepath.Join(t.TempDir(), "data.key")
	// Upper-case hex without a newline, as some tools write it.
	if err := os.WriteFile(path, []byte(strings.ToUpper(hex.EncodeToString(key))), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if want := newTestSealer(t, 7).KeyID(); s.KeyID() != want {
		t.Errorf("key id: got %q, want %q", s.KeyID(), want)
	}
}

func TestLoadOrCreateKeyRefuses(t *testing.T) {
	goodKey := hex.EncodeToString(bytes.Repeat([]byte{9}, KeySize)) + "\n"
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		dir     bool
		wantIn  string // part of the message
	}{
		{"world readable", goodKey, 0o644, false, "mode 0644"},
		{"group readable", goodKey, 0o640, false, "mode 0640"},
		{"group writable", goodKey, 0o620, false, "mode 0620"},
		{"garbage", "this is not a key\n", 0o600, false, "not a valid key"},
		{"empty", "", 0o600, false, "not a valid key"},
		{"short key", goodKey[:62] + "\n", 0o600, false, "not a valid key"},
		{"long key", "ab" + goodKey, 0o600, false, "not a valid key"},
		{"non-hex key", strings.Repeat("zz", KeySize) + "\n", 0o600, false, "not a valid key"},
		{"raw binary key", string(bytes.Repeat([]byte{0xa5}, KeySize)), 0o600, false, "not a valid key"},
		{"huge file", strings.Repeat("a", 2*maxKeyFileSize), 0o600, false, "not a valid key"},
		{"directory", "", 0o700, true, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "data.key")
			if tt.dir {
				if err := os.Mkdir(path, tt.mode); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			s, err := LoadOrCreateKey(path)
			if err == nil {
				t.Fatalf("got sealer %s, want an error", s.KeyID())
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, tt.wantIn) {
				t.Errorf("got %q, want a message naming %s and saying %q", msg, path, tt.wantIn)
			}
			if c := strings.TrimSpace(tt.content); c != "" && strings.Contains(msg, c) {
				t.Errorf("got %q, want a message without the file content", msg)
			}
			// The file is left as it was: never replaced by a new key.
			if !tt.dir {
				if got, _ := os.ReadFile(path); string(got) != tt.content {
					t.Errorf("file content after refusal: got %d bytes, want the original %d", len(got), len(tt.content))
				}
			}
		})
	}
}
