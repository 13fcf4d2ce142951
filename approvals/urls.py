from django.urls import path

from approvals import api

urlpatterns = [
    path("approvals", api.ApprovalCollection.as_view(), name="approvals"),
    path("approvals/<str:approval_id>", api.ApprovalDetail.as_view(), name="approval-detail"),
    path("approvals/<str:approval_id>/decision", api.ApprovalDecision.as_view(), name="approval-decision"),
]
