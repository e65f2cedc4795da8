from django.urls import path

from webapp.planning import api

app_name = "planning-api"
urlpatterns = [
    path("plans/", api.PlanListAPI.as_view(), name="plan-list"),
    path("plans/<int:pk>/", api.PlanDetailAPI.as_view(), name="plan-detail"),
    path("plans/<int:pk>/versions/", api.PlanVersionsAPI.as_view(), name="plan-versions"),
    path(
        "plans/<int:pk>/versions/<int:number>/",
        api.PlanVersionDetailAPI.as_view(),
        name="plan-version",
    ),
    path("plans/<int:pk>/tool-pose/", api.ToolPoseAPI.as_view(), name="plan-tool-pose"),
    path("plans/<int:pk>/outcomes/", api.OutcomesAPI.as_view(), name="plan-outcomes"),
]
