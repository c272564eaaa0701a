"""A one-file Django project (module loader test: `module = djangoapp`)."""
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    SECRET_KEY="test-only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    MIDDLEWARE=[],
)


def index(request):
    return HttpResponse("django ok")


def echo(request):
    return JsonResponse({
        "method": request.method,
        "body": len(request.body),
        "path": request.path,
        "script": request.META.get("SCRIPT_NAME"),
        "secure": request.is_secure(),
    })


urlpatterns = [path("", index), path("echo", echo)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
