"""Chat UI (Gradio) against the Ollama share chosen in the form; staged into the job."""

import json
import os
import urllib.request

import gradio as gr

API = os.environ.get("MT_LLM_API_URL", "")
MODEL = os.environ.get("MT_LLM_MODEL", "")


def reply(message, history):
    if not API or not MODEL:
        return "No LLM share was chosen when this session started: start it again with one."
    messages = []
    for item in history:
        if isinstance(item, dict):
            messages.append({"role": item["role"], "content": item["content"]})
        else:
            user, bot = item
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": bot}]
    messages.append({"role": "user", "content": message})
    body = json.dumps({"model": MODEL, "messages": messages, "stream": False}).encode()
    req = urllib.request.Request(API.rstrip("/") + "/api/chat", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.load(resp)["message"]["content"]


gr.ChatInterface(reply, title=f"Chat with {MODEL or 'no model'}").launch(
    server_name="0.0.0.0", server_port=int(os.environ["port"]),  # noqa: SIM112 (OOD names it port)
    root_path=os.environ["MT_GRADIO_ROOT_PATH"],
    auth=("ood", os.environ["password"]))  # noqa: SIM112 (OOD names it password)
