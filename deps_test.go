package twilioguard_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/twilioguard/twilioguard"

// rules lists, for each package (a prefix matches its subpackages), the
// project packages its code may import. Dependencies point one way:
// cmd -> internal/app -> {server, extauthz, ...} -> {middleware, client} ->
// webhookreq -> {gen, signature, store}. A package never imports its own
// children.
var rules = map[string][]string{
	"signature":             {},
	"store":                 {},
	"store/seal":            {},
	"store/atrest":          {"store", "store/seal"},
	"store/schema":          {},
	"store/sqlite":          {"store", "store/seal", "store/atrest", "store/schema"},
	"store/postgres":        {"store", "store/seal", "store/atrest", "store/schema", "replay"},
	"store/storetest":       {"store", "store/seal"},
	"gen":                   {"gen"},
	"internal/bound":        {},
	"replay":                {},
	"internal/connectguard": {},
	"webhookreq":            {"gen", "signature", "internal/bound"},
	"client":                {"gen"},
	"middleware":            {"gen", "webhookreq", "internal/bound"},
	"server":                {"gen", "signature", "store", "replay", "internal/bound", "internal/connectguard"},
	"extauthz":              {"gen", "webhookreq", "internal/bound"},
	"twilioapi":             {"gen", "signature", "store"},
	"twilioapi/twiliotest":  {"gen", "signature"},
	"internal/app": {"gen", "server", "extauthz", "twilioapi", "forwardauth", "replay", "store", "store/seal", "store/sqlite",
		"store/postgres", "internal/connectguard", "internal/bound"},
	"internal/testserver":   {},
	"internal/verifiertest": {"gen", "signature"},
	"internal/gatewaytest":  {"internal/testserver"},
	"proxy":                 {"gen", "middleware", "webhookreq", "internal/bound"},
	"forwardauth":           {"gen", "middleware", "webhookreq", "internal/bound"},
	"internal/pgtest":       {},
	"internal/urlcases":     {},
}

// testSupport are the packages any test may import besides its package's
// own rule: the signer (tests sign requests as Twilio would), the generated
// API, and the test helpers.
var testSupport = []string{"signature", "gen", "internal/testserver", "internal/urlcases", "internal/pgtest", "store/storetest", "store/seal", "internal/bound",
	"internal/verifiertest", "internal/gatewaytest"}

// testRules are further packages the tests of a package may import: tests
// that check an arrangement of parts (a client behind the middleware, a
// store under the server).
var testRules = map[string][]string{
	"client":         {"middleware"},
	"store/postgres": {"server"},
	"internal/app":   {"client", "store", "store/sqlite"},
	"extauthz":       {"client", "server", "store"},
	"twilioapi":      {"twilioapi/twiliotest", "client", "server", "store/sqlite"},
}

// stdlibOnly lists the packages that may import nothing outside the
// standard library.
var stdlibOnly = []string{"signature", "store", "store/seal", "internal/bound", "replay"}

type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func TestDependencyArrows(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-json", "./...").Output()
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
		if strings.HasPrefix(rel, "cmd/") || strings.HasPrefix(rel, "examples/") || rel == "deploy" || strings.HasPrefix(rel, "deploy/") || rel == "" {
			continue // the top of the graph may import anything public
		}
		allowed, ok := ruleFor(rel)
		if !ok {
			t.Errorf("package %s has no dependency rule; add one to deps_test.go", rel)
			continue
		}
		seen++
		check(t, rel, "", p.Imports, allowed)
		testAllowed := slices.Concat(allowed, testSupport, testRules[rel], []string{rel})
		check(t, rel, " (in its tests)", append(p.TestImports, p.XTestImports...), testAllowed)
	}
	if seen < 10 {
		t.Fatalf("checked only %d packages", seen)
	}
}

// check reports the imports of rel that allowed does not permit.
func check(t *testing.T, rel, where string, imports, allowed []string) {
	t.Helper()
	for _, imp := range imports {
		if !strings.HasPrefix(imp, module+"/") {
			if isStdlibOnly(rel) && where == "" && strings.Contains(strings.Split(imp, "/")[0], ".") {
				t.Errorf("%s imports %s: it may use only the standard library", rel, imp)
			}
			continue
		}
		dep := strings.TrimPrefix(imp, module+"/")
		switch {
		case strings.HasPrefix(dep, "cmd/"):
			t.Errorf("%s%s imports %s: nothing may import a command", rel, where, dep)
		case strings.HasPrefix(dep, rel+"/") && !slices.Contains(allowed, dep):
			t.Errorf("%s%s imports its own child %s", rel, where, dep)
		case !permitted(dep, allowed):
			t.Errorf("%s%s imports %s, which its rule does not allow", rel, where, dep)
		}
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
		if dep == a || a == "gen" && strings.HasPrefix(dep, "gen/") {
			return true
		}
	}
	return false
}

func isStdlibOnly(rel string) bool { return slices.Contains(stdlibOnly, rel) }
