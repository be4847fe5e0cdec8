package twilioguard_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadmeCommands runs every ```sh block of the README, in order, as one
// shell script in a fresh home directory (so the service's data directory
// is new), and checks what the quick start promises. Blocks fenced as
// ```console show commands that need something this test cannot give
// (Docker, a Python virtualenv, the test command itself).
func TestReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the README's commands")
	}
	for _, tool := range []string{"bash", "curl", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's commands need %s: %v", tool, err)
		}
	}
	for _, addr := range []string{"localhost:8080", "localhost:3000"} {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			msg := "the README's commands use " + addr + ", which something else listens on"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := shellBlocks(string(readme))
	if len(blocks) < 4 {
		t.Fatalf("found %d sh blocks in the README; the quick start alone has more", len(blocks))
	}

	home := t.TempDir()
	goEnv := func(name string) string {
		out, err := exec.Command("go", "env", name).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	env := []string{
		"HOME=" + home,
		"PATH=" + filepath.Join(home, "bin") + ":" + os.Getenv("PATH"),
		"GOBIN=" + filepath.Join(home, "bin"),
		"GOPATH=" + goEnv("GOPATH"),
		"GOCACHE=" + goEnv("GOCACHE"),
		"GOMODCACHE=" + goEnv("GOMODCACHE"),
		"GOFLAGS=" + os.Getenv("GOFLAGS"),
		"GOTOOLCHAIN=" + os.Getenv("GOTOOLCHAIN"),
	}
	script := "set -euo pipefail\n" + strings.Join(blocks, "\n") + "\n"
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A file, not a pipe: the service and the app the script starts in the
	// background keep their output open after the script ends.
	outFile, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	cmd.Stdout, cmd.Stderr = outFile, outFile
	err = cmd.Start()
	if err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	// The script leaves the service and the example app running: stop the
	// whole process group.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	b, rerr := os.ReadFile(outFile.Name())
	if rerr != nil {
		t.Fatal(rerr)
	}
	out := string(b)
	if err != nil {
		t.Fatalf("the README's commands failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		`"valid": true`,                       // twilioguard verify
		"<Message>",                           // the signed request reached the example app
		"\n403\n",                             // the unsigned one did not
		`"credential":"auth_token"`,           // curl with the raw body
		`"duplicate":true`,                    // the quick start verified this webhook before
		`"reason":"SIGNATURE_MISMATCH"`,       // curl with the http:// URL
		"signature matches the https:// form", // and its hint
		`"previousAuthTokenFingerprint"`,      // accounts rotate
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the README's commands printed no %q:\n%s", want, out)
		}
	}
}

// shellBlocks returns the contents of the ```sh blocks of a Markdown text.
func shellBlocks(md string) []string {
	var blocks []string
	var cur []string
	in := false
	for line := range strings.SplitSeq(md, "\n") {
		switch {
		case !in && strings.TrimSpace(line) == "```sh":
			in, cur = true, nil
		case in && strings.TrimSpace(line) == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}
