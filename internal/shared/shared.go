// Package shared finds the project's shared test data (the event catalogue
// and the signature vectors), which lives beside the repository in
// ../shared/testdata and is read where it stands, never copied in.
package shared

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// EnvDir overrides where the shared directory is.
const EnvDir = "HERALD_SHARED_DIR"

// TestdataPath returns the path of a shared test data file, failing the
// test (never skipping it) when the file is not there.
func TestdataPath(t testing.TB, name string) string {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		t.Fatalf("shared test data: %v", err)
	}
	p := filepath.Join(dir, "testdata", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("shared test data %s: %v (set %s to the shared directory)", p, err, EnvDir)
	}
	return p
}

// Dir returns the shared directory: $HERALD_SHARED_DIR, or ../shared
// beside the repository root (the directory holding go.mod).
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(root), "shared"), nil
}

// RepoRoot walks up from the working directory to the directory with go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
