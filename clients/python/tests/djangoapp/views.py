"""The two views of Twilio's classic Django webhook tutorial, unchanged but
for the import of the decorator: twilioguard's instead of the local one that
held the auth token; and the message view again as an async view."""

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from twilioguard.django import validate_twilio_request


@require_POST
@csrf_exempt
@validate_twilio_request
def incoming_call(request):
    """Twilio Voice URL - receives incoming calls from Twilio"""
    # Create a new TwiML response
    resp = VoiceResponse()

    # <Say> a message to the caller
    from_number = request.POST["From"]
    body = """
    Thanks for calling!

    Your phone number is {0}. I got your call because of Twilio's webhook.

    Goodbye!""".format(" ".join(from_number))
    resp.say(body)

    # Return the TwiML
    return HttpResponse(resp)


@require_POST
@csrf_exempt
@validate_twilio_request
def incoming_message(request):
    """Twilio Messaging URL - receives incoming messages from Twilio"""
    # Create a new TwiML response
    resp = MessagingResponse()

    # <Message> a text back to the person who texted us
    body = "Your text to me was {0} characters long. Webhooks are neat :)".format(len(request.POST["Body"]))
    resp.message(body)

    # Return the TwiML
    return HttpResponse(resp)


@require_POST
@csrf_exempt
@validate_twilio_request
async def incoming_message_async(request):
    """The messaging view as an async view."""
    resp = MessagingResponse()
    body = "Your text to me was {0} characters long. Webhooks are neat :)".format(len(request.POST["Body"]))
    resp.message(body)
    return HttpResponse(resp)
