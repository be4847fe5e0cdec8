"""The Flask app of Twilio's webhook-security tutorial, unchanged but for the
decorator: twilioguard's instead of the local one that held the auth token
and let everything through in debug mode. Settings (TWILIOGUARD_URL, …) come
from the environment."""

from flask import Flask, request
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from twilioguard.flask import validate_twilio_request

app = Flask(__name__)
app.config["DEBUG"] = True  # the classic decorator skipped validation here; twilioguard never does


@app.route("/voice", methods=["POST"])
@validate_twilio_request
def incoming_call():
    """Twilio Voice URL - receives incoming calls from Twilio"""
    # Create a new TwiML response
    resp = VoiceResponse()

    # <Say> a message to the caller
    from_number = request.values["From"]
    body = """
    Thanks for calling!

    Your phone number is {0}. I got your call because of Twilio's webhook.

    Goodbye!""".format(" ".join(from_number))
    resp.say(body)

    # Return the TwiML
    return str(resp)


@app.route("/message", methods=["POST"])
@validate_twilio_request
def incoming_message():
    """Twilio Messaging URL - receives incoming messages from Twilio"""
    # Create a new TwiML response
    resp = MessagingResponse()

    # <Message> a text back to the person who texted us
    body = "Your text to me was {0} characters long. Webhooks are neat :)".format(len(request.values["Body"]))
    resp.message(body)

    # Return the TwiML
    return str(resp)
