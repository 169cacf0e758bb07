"""Send, fetch and answer through the gonets HTTP gateway (docs/gateway.md); stdlib only."""
import base64, json, os, urllib.request

GATEWAY = os.environ.get("GONETS_GATEWAY", "http://127.0.0.1:7481")
KIND = "urn:gonets:fns:egrul-extract:1"

def call(who, method, path, body=b"", headers=None):
    auth = base64.b64encode(f"{who}:dev-{who.lower()}".encode()).decode()
    req = urllib.request.Request(GATEWAY + path, data=body if method == "POST" else None, method=method,
                                 headers={"Authorization": "Basic " + auth, **(headers or {})})
    with urllib.request.urlopen(req, timeout=30) as response:
        return json.load(response)

def fetch_one(who, queue):
    messages = call(who, "GET", f"/v1/queues/{queue}/messages?max=1&wait_ms=5000")["messages"]
    assert messages, f"nothing arrived in {queue}"
    return messages[0]

# The consumer (MFC) sends a request; 202 once durable, with the hub's receipt.
accepted = call("MFC", "POST", f"/v1/kinds/{KIND}/requests", b'{"inn": "7707083893"}',
                {"Content-Type": "application/json", "Idempotency-Key": "example-1"})
print("accepted", accepted["id"], "receipt signed by", (accepted["receipt"] or {}).get("receipt", {}).get("key_id"))

# The provider (FNS) fetches it, answers, and acks it.
request = fetch_one("FNS", f"requests/{KIND}")
print("FNS got", base64.b64decode(request["payload_base64"]).decode())
call("FNS", "POST", f"/v1/requests/{request['id']}/response", b'{"name": "PAO Sberbank"}')
call("FNS", "POST", f"/v1/queues/requests/{KIND}/messages/{request['id']}/ack")

# The consumer fetches the answer and acks it.
answer = fetch_one("MFC", "answers/MFC")
assert answer["reply_to"] == accepted["id"], answer
print("MFC got", answer["type"], base64.b64decode(answer["payload_base64"]).decode())
call("MFC", "POST", f"/v1/queues/answers/MFC/messages/{answer['id']}/ack")
print("status:", [e["event"] for e in call("MFC", "GET", f"/v1/messages/{accepted['id']}/status")["events"]])
