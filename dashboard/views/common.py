from django.shortcuts import render

from orchestrator.identity.principal import Principal, principal_for_user


def invalid_input(request, form):
    """A 400 page listing what is wrong with the query or form."""
    errors = [
        f"{'' if name == '__all__' else name + ': '}{error}" for name, errs in form.errors.items() for error in errs
    ]
    return render(request, "dashboard/invalid.html", {"errors": errors}, status=400)


def person(request) -> Principal:
    """The signed-in person as the services see them (audited as user:<username>)."""
    return principal_for_user(request.user)
