"""URLs of the end-to-end test project."""

from django.urls import path

from . import views

urlpatterns = [
    path("incoming-call/", views.incoming_call),
    path("incoming-message/", views.incoming_message),
]
