package repotest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-webhooks/herald/internal/shared"
)

// TestEveryPackageHasOneDocComment fails when a package lacks a doc
// comment, or has it in more than one file (they would be concatenated).
func TestEveryPackageHasOneDocComment(t *testing.T) {
	root, err := shared.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string][]string{} // dir → files with a package comment
	dirs := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (name == "testdata" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		dirs[dir] = true
		if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
			docs[dir] = append(docs[dir], filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir := range dirs {
		rel, _ := filepath.Rel(root, dir)
		switch n := len(docs[dir]); {
		case rel == ".":
			t.Errorf("Go files at the repository root; keep the root free of Go files")
		case n == 0:
			t.Errorf("package %s has no doc comment", rel)
		case n > 1:
			t.Errorf("package %s has doc comments in %d files %v; keep one", rel, n, docs[dir])
		}
	}
}

// TestHeraldLinksNoCluster keeps protoactor-go's cluster package (whose
// gossip.proto clashes with EventStoreDB's client at init) and test-only
// code out of the herald binary.
func TestHeraldLinksNoCluster(t *testing.T) {
	root, err := shared.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-deps", "./cmd/herald")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, forbidden := range []string{
		"github.com/asynkron/protoactor-go/cluster",
		"github.com/herald-webhooks/herald/internal/esdbserver",
		"github.com/herald-webhooks/herald/eventlog/memlog",
		"testing",
	} {
		for _, dep := range strings.Fields(string(out)) {
			if dep == forbidden {
				t.Errorf("cmd/herald depends on %s", forbidden)
			}
		}
	}
}

// TestHeraldVersion builds the binary as the Makefile does and runs
// `herald --version`: a registration conflict at init would panic here.
func TestHeraldVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	root, err := shared.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "herald")
	build := exec.Command("go", "build", "-o", bin, "./cmd/herald")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--version")
	cmd.Env = append(os.Environ(), "GOLANG_PROTOBUF_REGISTRATION_CONFLICT=panic")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("herald --version: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "herald ") {
		t.Fatalf("herald --version printed %q, want \"herald <version>\"", out)
	}
}
