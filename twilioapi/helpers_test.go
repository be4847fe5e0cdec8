package twilioapi

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/twilioapi/twiliotest"
)

// waits records the retry waits of a client instead of sleeping them.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

func (w *waits) list() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

// newTestClient returns a client of the fake Twilio API with creds, pages
// of three, and retry waits recorded rather than slept.
func newTestClient(t *testing.T, tw *twiliotest.Server, creds Credentials) (*Client, *waits) {
	t.Helper()
	c, err := NewClient(creds, Options{APIURL: tw.URL, PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	w := &waits{}
	c.transport.sleep = w.sleep
	return c, w
}

func tokenCreds(sid, token string) Credentials {
	return Credentials{AccountSID: sid, Secret: store.Secret(token)}
}

// family is a fake Twilio parent account with subaccounts.
type family struct {
	tw     *twiliotest.Server
	parent string
	token  string
	subs   []string
}

// newFamily creates a parent with n active subaccounts.
func newFamily(t *testing.T, n int) *family {
	t.Helper()
	tw := twiliotest.NewServer(t)
	f := &family{tw: tw}
	f.parent, f.token = tw.NewAccount("ISV parent")
	for i := range n {
		sid, _ := tw.NewSubaccount(f.parent, "customer "+string(rune('A'+i)))
		f.subs = append(f.subs, sid)
	}
	return f
}
