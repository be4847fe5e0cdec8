package server

import "github.com/twilioguard/twilioguard/signature"

// emptyFormHint explains a refused form request whose body is empty: Twilio
// never sends an empty form, so the body was lost before the verifier.
const emptyFormHint = "the form body is empty: Twilio never sends one, so the body was lost on the way " +
	"(a gateway that does not forward bodies, such as nginx auth_request or Caddy forward_auth, " +
	"or an application that read it first); put twilioguard proxy in front of the app, or make the gateway send the body"

// emptyForm reports whether req is a form request with an empty body.
func emptyForm(req *signature.Request) bool {
	return req.HasBody && len(req.Body) == 0 && req.ContentType == "application/x-www-form-urlencoded"
}
