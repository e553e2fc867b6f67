"""One MCP 2026-07-28 tools/call straight to `pqmcp serve` with Python's own
ssl module (docs/clients.md): TLS 1.3 with OpenSSL's default groups (on
OpenSSL 3.5, X25519MLKEM768 first), the gateway's certificate as the only
trust anchor, the client's ML-DSA identity as its certificate. Prints one
JSON line: the HTTP status, the TLS version, the OpenSSL in use and the body.

Usage: direct_client.py PORT GATEWAY_IDENTITY_DIR CLIENT_IDENTITY_DIR MESSAGE
"""
import http.client
import json
import ssl
import sys


def main() -> None:
    port, gateway_dir, client_dir, message = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(gateway_dir + "/identity.crt")
    ctx.load_cert_chain(client_dir + "/identity.crt", client_dir + "/identity.key")
    # The certificate names the gateway's peer id, not a host; trusting that
    # one certificate alone is the pin.
    ctx.check_hostname = False
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    envelope = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "python-ssl", "version": "1"},
    }
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "demo__echo", "arguments": {"message": message}, "_meta": envelope},
    }
    conn.request(
        "POST",
        "/mcp",
        json.dumps(body),
        {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2026-07-28",
            "Mcp-Method": "tools/call",
            "Mcp-Name": "demo__echo",
        },
    )
    response = conn.getresponse()
    print(json.dumps({
        "status": response.status,
        "version": conn.sock.version(),
        "openssl": ssl.OPENSSL_VERSION,
        "body": json.loads(response.read()),
    }))


if __name__ == "__main__":
    main()
