async def test_register_login_workspace_provider(api, client):
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    p = await api.provider(owner, slug, alias="prod")
    r = await client.get(f"/ws/{slug}/api/v1/providers", headers=owner.headers)
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()["data"]] == [p["id"]]
