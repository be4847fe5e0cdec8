// The SMS reply of Twilio's Node.js quickstart, with the webhook verified by
// a twilioguard service instead of an auth token in the app.
//
//   TWILIOGUARD_URL=http://localhost:8080 \
//   TWILIOGUARD_PUBLIC_BASE_URL=https://your-public-host.example \
//   node server.js
//
// Point your Twilio number's "A message comes in" webhook at
// https://your-public-host.example/sms.

import express from "express";
import twilio from "twilio";
import { webhook } from "twilioguard/express";

const { MessagingResponse } = twilio.twiml;

const app = express();

// webhook() reads TWILIOGUARD_URL, TWILIOGUARD_ACCOUNTS,
// TWILIOGUARD_PUBLIC_BASE_URL and TWILIOGUARD_TRUSTED_PROXIES, reads the raw
// body itself and sets req.body; it answers 403 to requests Twilio did not
// send and 503 when the service cannot be reached.
app.post("/sms", webhook({ route: "sms" }), (req, res) => {
  const twiml = new MessagingResponse();
  twiml.message("The Robots are coming! Head for the hills!");
  res.type("text/xml").send(twiml.toString());
});

const port = Number(process.env.PORT ?? 3000);
const server = app.listen(port, process.env.HOST ?? "127.0.0.1", () => {
  console.log(`listening on http://${server.address().address}:${server.address().port}`);
});
