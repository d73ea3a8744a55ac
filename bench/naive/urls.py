from django.urls import include, path

from .views import router

urlpatterns = [path("api/", include(router.urls))]
