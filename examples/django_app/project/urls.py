from django.urls import path

from examples.django_app.signup.views import signup

urlpatterns = [path("signup", signup)]
