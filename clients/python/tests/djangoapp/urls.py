"""URLs of the end-to-end test project."""

from django.urls import path

from . import views

urlpatterns = [
    path("incoming-call/", views.incoming_call),
    path("incoming-message/", views.incoming_message),
    path("incoming-message-async/", views.incoming_message_async),
]
