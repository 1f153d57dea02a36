import json, base64
from tests.helpers import *

def test_probe(api, seed, stack):
    seed.demo()
    seed.project("p2")
    seed.contact("dev-2", "d2@acme.example")
    for c in ("dev-1", "dev-2"):
        print(api.post("/projects/demo/grants", {"contact_id": c}, ACME_PM).status)
    a = api.get("/projects/demo/activity?limit=1", ACME_PM)
    print(base64.urlsafe_b64decode(a.body["next_cursor"]))
    a = api.get("/projects/demo/activity?limit=1&contact_id=dev-1", ACME_PM)
    print(base64.urlsafe_b64decode(a.body["next_cursor"]))
    a = api.get("/projects/demo/grants?limit=1", ACME_PM)
    print(base64.urlsafe_b64decode(a.body["next_cursor"]))
    print(api.get("/projects/p2/grants?limit=1&cursor=" + a.body["next_cursor"], ACME_PM).status)
    print(api.put("/projects/x", "["*60000, SERVICE).body)
    assert 0
