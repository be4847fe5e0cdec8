"""The same two webhooks as a FastAPI app: Form(...) parameters with the
TwilioGuard dependency, and a path prefix behind the ASGI middleware.
Settings (TWILIOGUARD_URL, …) come from the environment."""

from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Form, Request, Response
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from twilioguard import Verdict
from twilioguard.asgi import TwilioGuardMiddleware
from twilioguard.fastapi import TwilioGuard

guard = TwilioGuard()


@asynccontextmanager
async def lifespan(app):
    yield
    await guard.aclose()


app = FastAPI(debug=True, lifespan=lifespan)
app.add_middleware(TwilioGuardMiddleware, paths=["/twilio"])


def twiml(resp):
    return Response(str(resp), media_type="application/xml")


def message_reply(body):
    resp = MessagingResponse()
    resp.message("Your text to me was {0} characters long. Webhooks are neat :)".format(len(body)))
    return twiml(resp)


@app.post("/voice")
async def incoming_call(From: str = Form(), verdict: Verdict = Depends(guard)):
    """Twilio Voice URL - receives incoming calls from Twilio"""
    resp = VoiceResponse()
    resp.say(
        """
    Thanks for calling!

    Your phone number is {0}. I got your call because of Twilio's webhook.

    Goodbye!""".format(" ".join(From))
    )
    return twiml(resp)


@app.post("/message")
async def incoming_message(Body: str = Form(), verdict: Verdict = Depends(guard)):
    """Twilio Messaging URL - receives incoming messages from Twilio"""
    return message_reply(Body)


@app.post("/twilio/message")
async def protected_message(request: Request):
    """The same, under the middleware's /twilio prefix."""
    form = await request.form()
    return message_reply(form["Body"])
