package twilioapi

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCredentials(t *testing.T) {
	t.Parallel()
	sid, key := "AC"+strings.Repeat("a", 32), "SK"+strings.Repeat("b", 32)
	token := strings.Repeat("c", 32)
	tests := []struct {
		name string
		env  map[string]string
		file string // content of a credentials file, when set
		want Credentials
		err  string
	}{
		{name: "auth token", env: map[string]string{EnvAccountSID: sid, EnvAuthToken: token},
			want: Credentials{AccountSID: sid, Secret: "cccccccccccccccccccccccccccccccc"}},
		{name: "API key wins", env: map[string]string{EnvAccountSID: sid, EnvAuthToken: "x", EnvAPIKey: key, EnvAPISecret: token},
			want: Credentials{AccountSID: sid, APIKey: key, Secret: "cccccccccccccccccccccccccccccccc"}},
		{name: "file", env: map[string]string{EnvAccountSID: "ignored"},
			file: "# Twilio\nexport TWILIO_ACCOUNT_SID=" + sid + "\n\nTWILIO_AUTH_TOKEN=\"" + token + "\"\n",
			want: Credentials{AccountSID: sid, Secret: "cccccccccccccccccccccccccccccccc"}},
		{name: "nothing", err: ErrNoCredentials.Error()},
		{name: "no token", env: map[string]string{EnvAccountSID: sid}, err: "TWILIO_AUTH_TOKEN is empty"},
		{name: "no API secret", env: map[string]string{EnvAccountSID: sid, EnvAPIKey: key}, err: "TWILIO_API_SECRET is empty"},
		{name: "bad SID", env: map[string]string{EnvAccountSID: "AC123", EnvAuthToken: token}, err: "TWILIO_ACCOUNT_SID: want AC"},
		{name: "bad key", env: map[string]string{EnvAccountSID: sid, EnvAPIKey: "key", EnvAPISecret: token}, err: "TWILIO_API_KEY: want SK"},
		{name: "odd token", env: map[string]string{EnvAccountSID: sid, EnvAuthToken: "tok en!"}, err: "TWILIO_AUTH_TOKEN: want letters and digits only"},
		{name: "bad file line", file: "TWILIO_AUTH_TOKEN " + token + "\n", err: ":1: want NAME=value"},
		{name: "empty file", file: "\n", err: "no TWILIO_ACCOUNT_SID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := ""
			if tt.file != "" {
				file = filepath.Join(t.TempDir(), "twilio.env")
				if err := os.WriteFile(file, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := LoadCredentials(func(k string) string { return tt.env[k] }, file)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("LoadCredentials error = %v; want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), token) {
					t.Error("the error shows the token")
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("LoadCredentials = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	if _, err := LoadCredentials(nil, filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestNewClientRefusesBadAPIURL(t *testing.T) {
	t.Parallel()
	creds := tokenCreds("AC"+strings.Repeat("a", 32), strings.Repeat("c", 32))
	for _, u := range []string{"localhost:8081", "ftp://x", "http://u:p@x", "http://x/path", "http://x?q", "http://"} {
		if _, err := NewClient(creds, Options{APIURL: u}); err == nil {
			t.Errorf("NewClient accepted API URL %q", u)
		}
	}
	if _, err := NewClient(creds, Options{APIURL: "http://127.0.0.1:8081/"}); err != nil {
		t.Errorf("NewClient refused an origin: %v", err)
	}
	if _, err := NewClient(Credentials{}, Options{}); err == nil {
		t.Error("NewClient accepted empty credentials")
	}
}
