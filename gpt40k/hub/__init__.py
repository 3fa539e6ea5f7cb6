"""The Hugging Face Hub: finding and downloading checkpoints (client), pushing runs (publish), model
cards (card) and the demo's Space (space).

Nothing is imported here: the model's own save/load (``gpt40k.model.pretrained``) needs only the
client, and the client nothing of the package above it.
"""
