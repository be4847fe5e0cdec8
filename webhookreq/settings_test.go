package webhookreq

import (
	"strings"
	"testing"
)

func TestParseSettings(t *testing.T) {
	long := strings.Repeat("x", 10_000)
	for _, tc := range []struct {
		name    string
		parse   func(string) (bool, error)
		in      string
		want    bool
		wantErr string
	}{
		{name: "mode default", parse: ParseMode, in: ""},
		{name: "enforce", parse: ParseMode, in: "enforce"},
		{name: "shadow", parse: ParseMode, in: "shadow", want: true},
		{name: "mode is case-sensitive", parse: ParseMode, in: "Shadow", wantErr: `"Shadow" is neither "enforce" nor "shadow"`},
		{name: "duplicates default", parse: ParseDuplicates, in: ""},
		{name: "allow", parse: ParseDuplicates, in: "allow"},
		{name: "reject", parse: ParseDuplicates, in: "reject", want: true},
		{name: "unknown duplicates", parse: ParseDuplicates, in: "drop", wantErr: `"drop" is neither "allow" nor "reject"`},
		{name: "long value is cut", parse: ParseDuplicates, in: long, wantErr: `…" is neither`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if len(err.Error()) > 200 {
					t.Errorf("error is %d bytes long", len(err.Error()))
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
