package twilioapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/twilioguard/twilioguard/store"
)

// Environment variables (and credentials-file keys) that hold Twilio
// credentials: the names Twilio's own tools use.
const (
	EnvAccountSID = "TWILIO_ACCOUNT_SID"
	EnvAuthToken  = "TWILIO_AUTH_TOKEN"
	EnvAPIKey     = "TWILIO_API_KEY"
	EnvAPISecret  = "TWILIO_API_SECRET"
)

// ErrNoCredentials means neither the environment nor a file gave Twilio
// credentials.
var ErrNoCredentials = errors.New("no Twilio credentials: set " + EnvAccountSID + " and " + EnvAuthToken +
	" (or " + EnvAPIKey + " and " + EnvAPISecret + " with " + EnvAccountSID + "), or name a credentials file")

// Credentials authenticate to Twilio's REST API: an account SID with its
// auth token, or an API key (SK…) with its secret acting for the account.
// Secret never prints (see [store.Secret]).
type Credentials struct {
	// AccountSID is the account the credentials act for (AC…).
	AccountSID string
	// APIKey is the API key SID (SK…), or empty for an auth token.
	APIKey string
	// Secret is the auth token, or the API key's secret.
	Secret store.Secret
}

// LogValue implements [slog.LogValuer]: the SIDs, never the secret.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("account_sid", c.AccountSID), slog.String("api_key", c.APIKey))
}

// MarshalJSON writes the SIDs, never the secret.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"accountSid": c.AccountSID, "apiKey": c.APIKey})
}

func (c Credentials) username() string {
	if c.APIKey != "" {
		return c.APIKey
	}
	return c.AccountSID
}

// check validates the form of the credentials. Its errors name variables,
// never values.
func (c Credentials) check() error {
	switch {
	case !isSID(c.AccountSID, "AC"):
		return fmt.Errorf("%s: want AC followed by 32 hex digits", EnvAccountSID)
	case c.APIKey != "" && !isSID(c.APIKey, "SK"):
		return fmt.Errorf("%s: want SK followed by 32 hex digits", EnvAPIKey)
	case c.Secret == "":
		if c.APIKey != "" {
			return fmt.Errorf("%s is empty", EnvAPISecret)
		}
		return fmt.Errorf("%s is empty", EnvAuthToken)
	}
	// twilio-go refuses anything else in a Basic credential.
	for _, r := range c.Secret.Reveal() {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			if c.APIKey != "" {
				return fmt.Errorf("%s: want letters and digits only", EnvAPISecret)
			}
			return fmt.Errorf("%s: want letters and digits only", EnvAuthToken)
		}
	}
	return nil
}

// LoadCredentials reads Twilio credentials from file, when given, else from
// the environment through getenv. Both use the same names:
// TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN, or TWILIO_API_KEY and
// TWILIO_API_SECRET with TWILIO_ACCOUNT_SID (an API key wins when both are
// present). The file holds NAME=value lines; blank lines and lines starting
// with # are ignored, and a value may be quoted.
func LoadCredentials(getenv func(string) string, file string) (Credentials, error) {
	get := getenv
	if file != "" {
		vars, err := readEnvFile(file)
		if err != nil {
			return Credentials{}, err
		}
		get = func(k string) string { return vars[k] }
	}
	c := Credentials{AccountSID: strings.TrimSpace(get(EnvAccountSID))}
	if key := strings.TrimSpace(get(EnvAPIKey)); key != "" {
		c.APIKey, c.Secret = key, store.Secret(strings.TrimSpace(get(EnvAPISecret)))
	} else {
		c.Secret = store.Secret(strings.TrimSpace(get(EnvAuthToken)))
	}
	if c.AccountSID == "" && c.Secret == "" && c.APIKey == "" {
		if file != "" {
			return Credentials{}, fmt.Errorf("%s: no %s, %s or %s line", file, EnvAccountSID, EnvAuthToken, EnvAPIKey)
		}
		return Credentials{}, ErrNoCredentials
	}
	if err := c.check(); err != nil {
		if file != "" {
			return Credentials{}, fmt.Errorf("%s: %w", file, err)
		}
		return Credentials{}, err
	}
	return c, nil
}

// readEnvFile reads NAME=value lines. Its errors never quote a line, which
// may hold a secret.
func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read Twilio credentials: %w", err)
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want NAME=value", path, n)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		vars[strings.TrimSpace(k)] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return vars, nil
}

// isSID reports whether s is prefix followed by 32 lowercase hex digits.
func isSID(s, prefix string) bool {
	if len(s) != 34 || !strings.HasPrefix(s, prefix) {
		return false
	}
	for i := 2; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
