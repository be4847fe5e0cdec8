package twilioapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twilioguard/twilioguard/client"
	"github.com/twilioguard/twilioguard/internal/pgtest"
	"github.com/twilioguard/twilioguard/internal/testserver"
	"github.com/twilioguard/twilioguard/store"
)

// TestRotateWhileVerifying rotates an account's token through Twilio while
// goroutines verify, on every replica, webhooks signed with whatever token
// the fake Twilio signs with at that moment: not one may fail. The
// rotation talks to one replica only and relies on the documented
// propagation delay for the others.
func TestRotateWhileVerifying(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		rotateWhileVerifying(t, []*testserver.Server{testserver.Start(t, testserver.Options{Args: []string{"--log-level", "warn"}})})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		dsn := pgtest.NewDatabase(t, postgresDSN(t))
		key := make([]byte, 32)
		rand.Read(key)
		env := []string{
			"TWILIOGUARD_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key),
			"TWILIOGUARD_ADMIN_TOKEN=" + rand.Text(),
		}
		var replicas []*testserver.Server
		for range 3 {
			// A long resync interval: changes reach the other replicas
			// through LISTEN/NOTIFY only.
			replicas = append(replicas, testserver.Start(t, testserver.Options{
				Args: []string{"--store", dsn, "--resync-interval", "1h", "--log-level", "warn"}, Env: env,
			}))
		}
		rotateWhileVerifying(t, replicas)
	})
}

// postgresDSN returns the test PostgreSQL server's DSN; without one the
// test skips, or fails under CI.
func postgresDSN(t *testing.T) string {
	const name = "TWILIOGUARD_TEST_POSTGRES_DSN"
	dsn := os.Getenv(name)
	if dsn == "" {
		msg := name + " is not set: run scripts/test.sh, which installs PostgreSQL (apt-get install postgresql) and starts a private server"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dsn
}

func rotateWhileVerifying(t *testing.T, replicas []*testserver.Server) {
	f := newFamily(t, 1)
	sid := f.subs[0]
	clients := make([]*client.Client, len(replicas))
	for i, r := range replicas {
		c, err := client.New(r.URL, client.WithAdminToken(r.AdminToken))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		clients[i] = c
	}
	tw, _ := newTestClient(t, f.tw, tokenCreds(f.parent, f.token))
	if _, err := Import(t.Context(), tw, clients[0].Accounts, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if err := awaitProbe(t.Context(), c, sid, store.Secret(f.tw.AuthToken(sid)), 10*time.Second); err != nil {
			t.Fatalf("the imported account does not verify everywhere: %v", err)
		}
	}

	ctx, stop := context.WithCancel(t.Context())
	var (
		wg       sync.WaitGroup
		counts   = make([]atomic.Int64, len(replicas))
		mu       sync.Mutex
		failures []string
	)
	for i, c := range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				v, err := verify(ctx, c, signedBy(f.tw, sid))
				if ctx.Err() != nil {
					return
				}
				counts[i].Add(1)
				if err != nil || !v.Valid {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("replica %d: %v %v", i, v, err))
					mu.Unlock()
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}

	start := time.Now()
	_, err := Rotate(t.Context(), sid, RotateConfig{
		Twilio: tw, Accounts: clients[0].Accounts, Verifiers: []Verifier{clients[0]}, Grace: time.Hour,
	})
	took := time.Since(start)
	time.Sleep(time.Second) // keep verifying with the promoted token
	stop()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for i := range counts {
		n := counts[i].Load()
		if n == 0 {
			t.Errorf("replica %d verified nothing during the rotation", i)
		}
		total += n
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d verifications failed during the rotation, first: %s", len(failures), total, failures[0])
	}
	t.Logf("rotation took %v; %d webhooks verified on %d replica(s) meanwhile, %d failed", took.Round(time.Millisecond), total, len(replicas), len(failures))

	// After it, every replica verifies Twilio's new token as the auth token.
	for i, c := range clients {
		v, err := verify(t.Context(), c, signedBy(f.tw, sid))
		if err != nil || !v.Valid || v.Credential != "auth_token" {
			t.Errorf("replica %d after the rotation: %v, %v", i, v, err)
		}
	}
}
