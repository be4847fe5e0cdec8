package store_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/twilioguard/twilioguard/store"
)

func TestAccountCheck(t *testing.T) {
	t.Parallel()
	const sid = "AC0123456789abcdef0123456789abcdef"
	key := func(id, secret string, algs ...store.Algorithm) store.SharedKey {
		return store.SharedKey{ID: id, Secret: store.Secret(secret), Algorithms: algs}
	}
	tests := []struct {
		name string
		a    *store.Account
		ok   bool
	}{
		{"minimal", &store.Account{SID: sid, AuthToken: "t"}, true},
		{"full", &store.Account{SID: sid, AuthToken: "t", Aliases: []string{"a", "b"},
			SharedKeys: []store.SharedKey{key("k1", "s", store.HMACSHA1, store.HMACSHA256)}}, true},
		{"nil", nil, false},
		{"no SID", &store.Account{AuthToken: "t"}, false},
		{"no token", &store.Account{SID: sid}, false},
		{"empty alias", &store.Account{SID: sid, AuthToken: "t", Aliases: []string{""}}, false},
		{"alias twice", &store.Account{SID: sid, AuthToken: "t", Aliases: []string{"a", "a"}}, false},
		{"key without id", &store.Account{SID: sid, AuthToken: "t", SharedKeys: []store.SharedKey{key("", "s")}}, false},
		{"key id twice", &store.Account{SID: sid, AuthToken: "t", SharedKeys: []store.SharedKey{key("k", "s"), key("k", "s")}}, false},
		{"key without secret", &store.Account{SID: sid, AuthToken: "t", SharedKeys: []store.SharedKey{key("k", "")}}, false},
		{"unknown algorithm", &store.Account{SID: sid, AuthToken: "t", SharedKeys: []store.SharedKey{key("k", "s", "HMAC_MD5")}}, false},
	}
	for _, tt := range tests {
		err := tt.a.Check()
		if (err == nil) != tt.ok {
			t.Errorf("%s: Check() = %v; want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestAccountClone(t *testing.T) {
	t.Parallel()
	a := &store.Account{
		SID:        "AC0123456789abcdef0123456789abcdef",
		Aliases:    []string{"a"},
		SharedKeys: []store.SharedKey{{ID: "k", Secret: "s", Algorithms: []store.Algorithm{store.HMACSHA1}}},
		Suspended:  true,
		Unreadable: []string{"auth_token"},
	}
	c := a.Clone()
	c.Aliases[0], c.SharedKeys[0].ID, c.SharedKeys[0].Algorithms[0], c.Unreadable[0] = "x", "x", "x", "x"
	if a.Aliases[0] != "a" || a.SharedKeys[0].ID != "k" || a.SharedKeys[0].Algorithms[0] != store.HMACSHA1 || a.Unreadable[0] != "auth_token" {
		t.Errorf("changing a clone changed the original: %+v", a)
	}
	if !c.Suspended {
		t.Error("Clone lost Suspended")
	}
	if n := (&store.Account{}).Clone(); n.Aliases != nil || n.SharedKeys != nil || n.Unreadable != nil {
		t.Errorf("Clone of an empty account = %+v; want nil slices kept nil", n)
	}
}

func TestSecretNeverMarshals(t *testing.T) {
	t.Parallel()
	const token = "s3cr3t-token-value"
	holder := struct{ Token store.Secret }{Token: token}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "holder", holder, "secret", store.Secret(token))
	b, err := json.Marshal(holder)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{buf.String(), string(b), fmt.Sprintf("%v %+v %#v %s", holder, holder, holder, store.Secret(token))} {
		if strings.Contains(out, token) {
			t.Errorf("output reveals the secret: %s", out)
		}
	}
}
