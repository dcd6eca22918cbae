import pytest
from tests.review_world import build_world
def test_smoke(rt, client):
    w = build_world(rt)
    print({k: len(v) for k, v in w.suggestion_ids.items()})
    r = client.get("/api/v1/suggestions?limit=5", headers=w.headers("admin"))
    print(r.status_code, r.get_data(as_text=True)[:1500])
    r = client.get("/api/v1/openapi.json")
    print(r.status_code, r.get_data(as_text=True)[:300])
    sid = w.suggestion_ids["T-100"][0]
    r = client.get(f"/api/v1/suggestions/{sid}", headers=w.headers("admin"))
    print(r.status_code, r.get_data(as_text=True)[:3000])
    r = client.get("/api/v1/suggestions?limit=500", headers=w.headers("admin"))
    print(r.status_code, r.headers, r.get_data(as_text=True)[:1500])
    r = client.get("/api/v1/stats", headers=w.headers("supervisor"))
    print(r.status_code, r.get_data(as_text=True)[:800])
    r = client.get("/api/v1/suggestions")
    print(r.status_code, r.headers, r.get_data(as_text=True)[:800])
