from django.urls import path

from policy import api

urlpatterns = [
    path("profiles/<str:role>", api.ProfileDetail.as_view(), name="profile-detail"),
    path("policy/check", api.PolicyCheck.as_view(), name="policy-check"),
    # Without a role: every role ("pause all" / "resume all").
    path("roles/paused", api.PausedRoles.as_view(), name="roles-paused"),
    path("roles/pause", api.PauseAllRoles.as_view(), name="roles-pause-all"),
    path("roles/resume", api.ResumeAllRoles.as_view(), name="roles-resume-all"),
    path("roles/<str:role>/pause", api.PauseRole.as_view(), name="role-pause"),
    path("roles/<str:role>/resume", api.ResumeRole.as_view(), name="role-resume"),
]
