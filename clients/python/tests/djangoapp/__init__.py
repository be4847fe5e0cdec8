"""A minimal Django project with the two classic Twilio webhook views,
protected by twilioguard instead of a local auth token."""
