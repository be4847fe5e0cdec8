package client_test

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

// TestDependencies keeps the arrows of the layout honest: the client links
// only the generated code, never the middleware, the server or a store.
func TestDependencies(t *testing.T) {
	t.Parallel()
	const module = "github.com/twilioguard/twilioguard"
	banned := []string{module + "/middleware", module + "/signature", module + "/server", module + "/store", module + "/cmd", module + "/extauthz"}
	seen := map[string]bool{}
	var walk func(path, via string)
	walk = func(path, via string) {
		if seen[path] {
			return
		}
		seen[path] = true
		for _, b := range banned {
			if path == b || strings.HasPrefix(path, b+"/") {
				t.Errorf("client imports %s (via %s)", path, via)
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
	walk(module+"/client", "")
	if !seen[module+"/gen/twilioguard/v1"] {
		t.Errorf("walk did not reach the generated messages; the test is not reading imports")
	}
}
