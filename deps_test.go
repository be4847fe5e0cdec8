package twilioguard_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/twilioguard/twilioguard"

// rules lists, for each package (a prefix matches its subpackages), the
// project packages it may import. Dependencies point one way:
// cmd -> {server, extauthz, middleware, client} -> {gen, signature, store}.
var rules = map[string][]string{
	"signature":           {},
	"store":               {},
	"store/seal":          {},
	"store/sqlite":        {"store", "store/seal"},
	"store/postgres":      {"store", "store/seal"},
	"store/storetest":     {"store"},
	"gen":                 {"gen"},
	"server":              {"gen", "signature", "store"},
	"extauthz":            {"gen", "signature"},
	"middleware":          {"gen", "signature"},
	"client":              {"gen", "signature"},
	"twilioapi":           {"gen", "signature", "store"},
	"internal/testserver": {},
	"internal/pgtest":     {},
}

// stdlibOnly lists the packages that may import nothing outside the
// standard library.
var stdlibOnly = []string{"signature", "store", "store/seal"}

type pkg struct {
	ImportPath string
	Imports    []string
}

func TestDependencyArrows(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "list", "-json", "./...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if strings.HasPrefix(rel, "cmd/") || strings.HasPrefix(rel, "examples/") || strings.HasPrefix(rel, "deploy/") || rel == "" {
			continue // the top of the graph may import anything public
		}
		allowed, ok := ruleFor(rel)
		if !ok {
			t.Errorf("package %s has no dependency rule; add one to deps_test.go", rel)
			continue
		}
		seen++
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/") {
				dep := strings.TrimPrefix(imp, module+"/")
				if strings.HasPrefix(dep, "cmd/") {
					t.Errorf("%s imports %s: nothing may import a command", rel, dep)
				}
				if !permitted(dep, allowed) && !strings.HasPrefix(dep, rel+"/") {
					t.Errorf("%s imports %s, which its rule does not allow", rel, dep)
				}
				continue
			}
			if isStdlibOnly(rel) && strings.Contains(strings.Split(imp, "/")[0], ".") {
				t.Errorf("%s imports %s: it may use only the standard library", rel, imp)
			}
		}
	}
	if seen < 5 {
		t.Fatalf("checked only %d packages", seen)
	}
}

func ruleFor(rel string) ([]string, bool) {
	best := ""
	for p := range rules {
		if (rel == p || strings.HasPrefix(rel, p+"/")) && len(p) > len(best) {
			best = p
		}
	}
	if best == "" {
		return nil, false
	}
	return rules[best], true
}

func permitted(dep string, allowed []string) bool {
	for _, a := range allowed {
		if dep == a || strings.HasPrefix(dep, a+"/") && a == "gen" {
			return true
		}
	}
	return false
}

func isStdlibOnly(rel string) bool {
	for _, s := range stdlibOnly {
		if rel == s {
			return true
		}
	}
	return false
}
