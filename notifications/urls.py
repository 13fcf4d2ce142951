from django.urls import path

from notifications import api

urlpatterns = [
    path("notifications", api.NotificationCollection.as_view(), name="notifications"),
    path("notifications/<str:notification_id>/ack", api.AckNotification.as_view(), name="notification-ack"),
]
