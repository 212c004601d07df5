async def test_walkthrough(team):
    c = await team.submitted(team.engineer)
    assert c["state"] == "submitted"
    r = await team.act(team.approver, c["id"], "approve", {"comment": "ok"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "approved"
    assert r.json()["approvals"][0]["comment"] == "ok"
    r = await team.act(team.engineer, c["id"], "implement", {"notes": "done"})
    assert r.status_code == 200, r.text
    r = await team.call(team.viewer, "GET", "/changes")
    assert r.status_code == 200, r.text
    r = await team.call(team.owner, "POST", "/incidents", {"title": "x", "severity": "sev2", "assignee_id": team.engineer.id})
    assert r.status_code == 201, r.text
    r = await team.call(team.owner, "POST", "/invitations", {"email": "a@example.com", "role": "viewer"})
    assert r.status_code == 201, r.text
    r = await team.client.get("/api/v1/me/notifications", headers=team.engineer.headers)
    assert r.status_code == 200, r.text
