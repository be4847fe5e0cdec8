// Command webhook is a Twilio webhook app protected by twilioguard: the
// classic "incoming call" and "incoming message" handlers behind the
// middleware, with no auth token in the app.
//
//	TWILIOGUARD_URL=http://localhost:8080 TWILIOGUARD_PUBLIC_BASE_URL=https://example.com go run ./examples/webhook
//
// Environment: TWILIOGUARD_URL (the service), either
// TWILIOGUARD_PUBLIC_BASE_URL or TWILIOGUARD_TRUSTED_PROXIES (comma-separated
// CIDRs) for the public URL behind a proxy, optional TWILIOGUARD_ACCOUNTS,
// and ADDR (default localhost:3000).
package main

import (
	"cmp"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/twilioguard/twilioguard/client"
	"github.com/twilioguard/twilioguard/middleware"
)

func main() {
	if err := run(); err != nil {
		slog.Error("webhook", "error", err)
		os.Exit(1)
	}
}

func run() error {
	c, err := client.New(cmp.Or(os.Getenv("TWILIOGUARD_URL"), "http://localhost:8080"))
	if err != nil {
		return err
	}
	h, err := newHandler(c, slog.Default(), os.Getenv)
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: cmp.Or(os.Getenv("ADDR"), "localhost:3000"), Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// newHandler returns the app: POST /voice and POST /sms, checked by v.
func newHandler(v middleware.Verifier, log *slog.Logger, getenv func(string) string) (http.Handler, error) {
	m, err := middleware.New(v, middleware.WithLogger(log),
		middleware.WithPublicBaseURL(getenv("TWILIOGUARD_PUBLIC_BASE_URL")),
		middleware.WithTrustedProxies(strings.Split(getenv("TWILIOGUARD_TRUSTED_PROXIES"), ",")...),
		middleware.WithAccounts(strings.Split(getenv("TWILIOGUARD_ACCOUNTS"), ",")...))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /voice", func(w http.ResponseWriter, r *http.Request) {
		twiml(w, "<Say>Twilio's always there when you call!</Say>")
	})
	mux.HandleFunc("POST /sms", func(w http.ResponseWriter, r *http.Request) {
		twiml(w, "<Message>Twilio's always there when you text! You said: "+html.EscapeString(r.PostFormValue("Body"))+"</Message>")
	})
	return m.Wrap(mux), nil
}

func twiml(w http.ResponseWriter, verbs string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>%s</Response>\n", verbs)
}
