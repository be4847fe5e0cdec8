package middleware_test

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

// TestDependencies keeps the arrows of the layout honest: the middleware
// talks to a Verifier and never links the client, the server or a store.
func TestDependencies(t *testing.T) {
	t.Parallel()
	const module = "github.com/twilioguard/twilioguard"
	banned := []string{module + "/client", module + "/server", module + "/store", module + "/cmd", module + "/extauthz"}
	seen := map[string]bool{}
	var walk func(path, via string)
	walk = func(path, via string) {
		if seen[path] {
			return
		}
		seen[path] = true
		for _, b := range banned {
			if path == b || strings.HasPrefix(path, b+"/") {
				t.Errorf("middleware imports %s (via %s)", path, via)
			}
		}
		dir := filepath.Join("..", filepath.FromSlash(strings.TrimPrefix(path, module)))
		pkg, err := build.Default.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("read %s: %v", dir, err)
		}
		for _, imp := range pkg.Imports {
			if imp == module || strings.HasPrefix(imp, module+"/") {
				walk(imp, path)
			}
		}
	}
	walk(module+"/middleware", "")
	if !seen[module+"/gen/twilioguard/v1"] {
		t.Errorf("walk did not reach the generated messages; the test is not reading imports")
	}
}
