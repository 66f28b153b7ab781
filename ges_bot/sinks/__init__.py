"""Chats beyond Slack: group-bot webhooks (Lark/Feishu, DingTalk, WeCom, Microsoft Teams).

Owns what is particular to each platform's custom-bot webhook: request signing (``signing``).
Rendering and delivery to these sinks build on the neutral alert document (issue 16, in progress).
"""
