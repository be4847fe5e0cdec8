package server

import (
	"sync"
	"time"

	"github.com/twilioguard/twilioguard/signature"
	"github.com/twilioguard/twilioguard/store"
)

// credentials is the part of an account that verification needs, kept in
// memory so that verifying never waits on the store.
type credentials struct {
	sid     string
	version int64
	created time.Time
	// authToken and previousToken (accepted until previousUntil) are kept
	// as plain strings, not prepared credentials (signature.NewCredential):
	// a prepared HMAC state would double the memory an account takes in a
	// cache of a million, to save a fraction of a microsecond per call.
	authToken     string
	previousToken string
	previousUntil time.Time
	sharedKeys    []sharedKey
	// unreadable names the secrets the store could not read back; while
	// there are any, a request none of the others verifies is undecidable.
	unreadable []string
}

// sharedKey is a SharedKey as a credential for each algorithm it allows.
type sharedKey struct {
	id         string
	algorithms []signature.Algorithm
	creds      []signature.Credential // creds[i] uses algorithms[i]
}

func newCredentials(a *store.Account) *credentials {
	c := &credentials{
		sid:           a.SID,
		version:       a.Version,
		created:       a.CreateTime,
		authToken:     a.AuthToken.Reveal(),
		previousToken: a.PreviousAuthToken.Reveal(),
		previousUntil: a.PreviousExpireTime,
		unreadable:    a.Unreadable,
	}
	if len(a.SharedKeys) > 0 {
		c.sharedKeys = make([]sharedKey, len(a.SharedKeys))
		for i, k := range a.SharedKeys {
			sk := sharedKey{id: k.ID}
			for _, alg := range k.Algorithms {
				a := algorithmFromStore(alg)
				sk.algorithms = append(sk.algorithms, a)
				sk.creds = append(sk.creds, signature.Credential{Name: k.ID, Secret: k.Secret.Reveal(), Algorithm: a})
			}
			c.sharedKeys[i] = sk
		}
	}
	return c
}

// cache maps SIDs and aliases to credentials. It is the only source the
// verification path reads.
type cache struct {
	mu      sync.RWMutex
	bySID   map[string]*credentials
	aliases map[string]string   // alias -> SID
	names   map[string][]string // SID -> its aliases
	loaded  bool
	synced  time.Time
	// nUnreadable counts the accounts with unreadable secrets.
	nUnreadable int
	// touched records the SIDs changed while a full load is reading the
	// store (nil when none runs), so the load cannot bring back older data.
	touched map[string]struct{}
}

func newCache() *cache {
	return &cache{
		bySID:   make(map[string]*credentials),
		aliases: make(map[string]string),
		names:   make(map[string][]string),
	}
}

// lookup finds an account by SID or alias.
func (c *cache) lookup(key string) (*credentials, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if cr, ok := c.bySID[key]; ok {
		return cr, true
	}
	if sid, ok := c.aliases[key]; ok {
		cr, ok := c.bySID[sid]
		return cr, ok
	}
	return nil, false
}

// resolve returns the SID an account key (SID or alias) names, if known.
func (c *cache) resolve(key string) (string, bool) {
	cr, ok := c.lookup(key)
	if !ok {
		return "", false
	}
	return cr.sid, true
}

// set adds or replaces one account. A write that lands after a newer one
// of the same account (concurrent admin calls, late notifications) is
// ignored.
func (c *cache) set(a *store.Account) {
	cr := newCredentials(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.bySID[a.SID]; ok && old.created.Equal(a.CreateTime) && old.version > a.Version {
		return
	}
	c.touch(a.SID)
	c.removeLocked(a.SID)
	c.bySID[a.SID] = cr
	if len(cr.unreadable) > 0 {
		c.nUnreadable++
	}
	if len(a.Aliases) > 0 {
		c.names[a.SID] = append([]string(nil), a.Aliases...)
		for _, al := range a.Aliases {
			c.aliases[al] = a.SID
		}
	}
}

// remove drops one account.
func (c *cache) remove(sid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.touch(sid)
	c.removeLocked(sid)
}

func (c *cache) touch(sid string) {
	if c.touched != nil {
		c.touched[sid] = struct{}{}
	}
}

// beginLoad starts recording changes for [cache.replace].
func (c *cache) beginLoad() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.touched = make(map[string]struct{})
}

func (c *cache) removeLocked(sid string) {
	if cr, ok := c.bySID[sid]; ok && len(cr.unreadable) > 0 {
		c.nUnreadable--
	}
	for _, al := range c.names[sid] {
		if c.aliases[al] == sid {
			delete(c.aliases, al)
		}
	}
	delete(c.names, sid)
	delete(c.bySID, sid)
}

// replace swaps in a complete new set of accounts (a full resync) read
// since beginLoad. Accounts changed in the meantime keep their newer state.
func (c *cache) replace(next *cache, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for sid := range c.touched {
		next.removeLocked(sid)
		if cr, ok := c.bySID[sid]; ok {
			next.bySID[sid] = cr
			if len(cr.unreadable) > 0 {
				next.nUnreadable++
			}
			next.names[sid] = c.names[sid]
			for _, al := range c.names[sid] {
				next.aliases[al] = sid
			}
		}
	}
	c.touched = nil
	c.bySID, c.aliases, c.names, c.nUnreadable = next.bySID, next.aliases, next.names, next.nUnreadable
	c.loaded = true
	c.synced = now
}

// abortLoad stops recording changes after a failed load.
func (c *cache) abortLoad() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.touched = nil
}

// status reports whether a full load ever succeeded, when the last one
// finished, and how many accounts are cached.
func (c *cache) status() (loaded bool, synced time.Time, size int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.loaded, c.synced, len(c.bySID)
}

// unreadable counts the cached accounts with secrets that cannot be read.
func (c *cache) unreadable() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.nUnreadable
}
