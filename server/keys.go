package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/herald-webhooks/herald/api"
	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/internal/randid"
)

const (
	keysStream       = "herald-keys"
	recAPIKeyCreated = "apiKeyCreated"
	// APIKeyPrefix starts every Herald API key.
	APIKeyPrefix  = "herald-api-"
	keyIDLength   = 12
	keySecretLen  = 40
	maxKeyDescLen = 256
)

type apiKeyCreated struct {
	Type        string    `json:"type"`
	V           int       `json:"v"`
	ID          string    `json:"id"`
	Hash        string    `json:"hash"` // hex SHA-256 of the whole key
	Tailnet     string    `json:"tailnet"`
	Description string    `json:"description"`
	At          time.Time `json:"at"`
}

// keyStore holds the API keys' hashes.
type keyStore struct {
	log     eventlog.Log
	mu      sync.Mutex
	byID    map[string]apiKeyCreated
	version int64
}

func loadKeys(ctx context.Context, log eventlog.Log) (*keyStore, error) {
	ks := &keyStore{log: log, byID: map[string]apiKeyCreated{}, version: -1}
	err := readStream(ctx, log, keysStream, func(rec eventlog.Record) error {
		ks.version = int64(rec.Version)
		if rec.Type != recAPIKeyCreated {
			return nil
		}
		var k apiKeyCreated
		if err := json.Unmarshal(rec.Data, &k); err != nil {
			return fmt.Errorf("decode %s@%d: %w", keysStream, rec.Version, err)
		}
		ks.byID[k.ID] = k
		return nil
	})
	return ks, err
}

func (ks *keyStore) hasAdmin() bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	for _, k := range ks.byID {
		if k.Tailnet == "" {
			return true
		}
	}
	return false
}

// create makes a key, logs its hash, and returns the key (once).
func (ks *keyStore) create(ctx context.Context, tailnetName, description string, now time.Time) (key, id string, err error) {
	return ks.createWith(ctx, tailnetName, description, now, nil)
}

// createWith is create with a step (keep, if not nil) that runs on the key
// before its hash is logged.
func (ks *keyStore) createWith(ctx context.Context, tailnetName, description string, now time.Time, keep func(key string) error) (key, id string, err error) {
	id, err = randid.String(keyIDLength)
	if err != nil {
		return "", "", err
	}
	secret, err := randid.String(keySecretLen)
	if err != nil {
		return "", "", err
	}
	key = APIKeyPrefix + id + "-" + secret
	if keep != nil {
		if err := keep(key); err != nil {
			return "", "", err
		}
	}
	rec := apiKeyCreated{Type: recAPIKeyCreated, V: 1, ID: id, Hash: hashKey(key), Tailnet: tailnetName, Description: description, At: now.UTC()}
	data, err := json.Marshal(rec)
	if err != nil {
		return "", "", err
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	res, err := ks.log.Append(ctx, keysStream, eventlog.ExpectedVersion(ks.version), eventlog.Event{Type: recAPIKeyCreated, Data: data})
	if err != nil {
		return "", "", fmt.Errorf("record API key: %w", err)
	}
	ks.version = int64(res.Version)
	ks.byID[id] = rec
	return key, id, nil
}

// dummyHash is compared against when a key's id is unknown, so that a
// wrong id costs the same time as a wrong secret.
var dummyHash = hashKey("herald-api-unknown")

func (ks *keyStore) authenticate(key string) (api.Principal, bool) {
	id := ""
	if rest, ok := strings.CutPrefix(key, APIKeyPrefix); ok {
		id, _, _ = strings.Cut(rest, "-")
	}
	ks.mu.Lock()
	rec, found := ks.byID[id]
	ks.mu.Unlock()
	want := dummyHash
	if found {
		want = rec.Hash
	}
	got := hashKey(key)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 || !found {
		return api.Principal{}, false
	}
	name := rec.Description
	if name == "" {
		name = "api-key:" + rec.ID
	}
	return api.Principal{KeyID: rec.ID, Name: name, Tailnet: rec.Tailnet}, true
}

func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}
