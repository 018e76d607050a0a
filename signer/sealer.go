package signer

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	// KeySize is the size in bytes of a data key (AES-256).
	KeySize = 32
	// KeyFileMode is the mode LoadOrCreateKey creates key files with; it
	// refuses files that grant any group or other permission.
	KeyFileMode fs.FileMode = 0o600

	keyDirMode     fs.FileMode = 0o700
	maxKeyFileSize             = 1024
	sealedPrefix               = "v1:"
	keyIDSize                  = 4
	keyIDLabel                 = "herald sealer key id v1"
)

// ErrUnseal is wrapped by every error Open returns.
var ErrUnseal = errors.New("cannot open sealed value")

var sealedEncoding = base64.RawURLEncoding

// Sealer seals and opens secrets with AES-256-GCM under one data key. It is
// safe for concurrent use.
type Sealer struct {
	aead  cipher.AEAD
	keyID string
}

// NewSealer returns a Sealer for a KeySize-byte key. The key is copied.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("data key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("new aes cipher: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("new gcm: %w", err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(keyIDLabel))
	return &Sealer{aead: aead, keyID: hex.EncodeToString(m.Sum(nil)[:keyIDSize])}, nil
}

// KeyID returns a short public identifier of the data key (8 hex digits),
// fit for logs: it tells keys apart without revealing them.
func (s *Sealer) KeyID() string { return s.keyID }

// Seal encrypts plaintext bound to additionalData (an endpoint id, say) and
// returns "v1:<key id>:<base64url of nonce||ciphertext||tag>". The same
// additionalData must be given to Open.
func (s *Sealer) Seal(plaintext string, additionalData []byte) (string, error) {
	ct := s.aead.Seal(nil, nil, []byte(plaintext), additionalData)
	var b strings.Builder
	b.Grow(len(sealedPrefix) + 2*keyIDSize + 1 + sealedEncoding.EncodedLen(len(ct)))
	b.WriteString(sealedPrefix)
	b.WriteString(s.keyID)
	b.WriteByte(':')
	b.WriteString(sealedEncoding.EncodeToString(ct))
	return b.String(), nil
}

// Open decrypts a value made by Seal with the same key and additionalData.
// Errors wrap ErrUnseal and never contain the plaintext.
func (s *Sealer) Open(sealed string, additionalData []byte) (string, error) {
	rest, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return "", fmt.Errorf("%w: not a %q sealed value", ErrUnseal, sealedPrefix)
	}
	kid, payload, ok := strings.Cut(rest, ":")
	if !ok {
		return "", fmt.Errorf("%w: no key id", ErrUnseal)
	}
	if kid != s.keyID {
		return "", fmt.Errorf("%w: sealed under data key %q, this key is %q", ErrUnseal, kid, s.keyID)
	}
	ct, err := sealedEncoding.DecodeString(payload)
	if err != nil {
		return "", fmt.Errorf("%w: bad base64", ErrUnseal)
	}
	if len(ct) < s.aead.Overhead() {
		return "", fmt.Errorf("%w: %d bytes, shorter than nonce and tag", ErrUnseal, len(ct))
	}
	pt, err := s.aead.Open(nil, nil, ct, additionalData)
	if err != nil {
		return "", fmt.Errorf("%w: authentication failed (tampered, or sealed for other additional data)", ErrUnseal)
	}
	return string(pt), nil
}

// LoadOrCreateKey returns a Sealer for the data key in the file at path. If
// the file does not exist it is created (and its directory, mode 0700) with
// a new random key, written to a temporary file, fsync'd and linked into
// place so that concurrent callers end up with the same key. The file holds
// the key as 64 hex digits and a newline (`openssl rand -hex 32` makes one).
// A file that is not a regular file, that grants any group or other
// permission, or whose content is not a key is refused; errors name the path,
// never the key.
func LoadOrCreateKey(path string) (*Sealer, error) {
	key, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKeyFile(path)
	}
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return NewSealer(key)
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open data key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat data key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("data key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("data key file %s has mode %#o, want %#o (no group or other access; chmod 600 it)",
			path, perm, KeyFileMode)
	}
	content, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read data key file %s: %w", path, err)
	}
	defer clear(content)
	if len(content) > maxKeyFileSize {
		return nil, fmt.Errorf("data key file %s is not a valid key: longer than %d bytes", path, maxKeyFileSize)
	}
	text := strings.TrimSpace(string(content))
	if len(text) != hex.EncodedLen(KeySize) {
		return nil, fmt.Errorf("data key file %s is not a valid key: want %d hex digits", path, hex.EncodedLen(KeySize))
	}
	key, err := hex.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("data key file %s is not a valid key: not hex", path)
	}
	return key, nil
}

func createKeyFile(path string) (key []byte, err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, keyDirMode); err != nil {
		return nil, fmt.Errorf("create data key directory: %w", err)
	}
	key = make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate data key: %w", err)
	}
	text := make([]byte, hex.EncodedLen(KeySize)+1)
	hex.Encode(text, key)
	text[len(text)-1] = '\n'
	defer clear(text)

	// os.CreateTemp creates the file with mode 0600.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create data key file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(text); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write data key file %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("sync data key file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("close data key file %s: %w", path, err)
	}
	// Link, unlike rename, never replaces a key another process has just
	// created: the loser of a race reads the winner's key.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			clear(key)
			return readKeyFile(path)
		}
		return nil, fmt.Errorf("install data key file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("sync data key directory: %w", err)
	}
	return key, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
