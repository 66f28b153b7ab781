"""Chats beyond Slack: group-bot webhooks (Lark/Feishu, DingTalk, WeCom, Microsoft Teams, Slack
incoming webhooks) as alert sinks.

Owns what is particular to each platform's custom-bot webhook, over the neutral alert document:
what a sink is (``targets``), signing (``signing``), words in ``en`` / ``zh-CN`` (``words``), one
renderer per platform (``lark``, ``dingtalk``, ``wecom``, ``teams``, ``slackhook``, over
``compose``), posting and classifying answers (``sender``), the outbox worker (``worker``),
``ges-bot check`` (``preflight``) and the terminal view (``terminal``). Routing, the store and the
Slack delivery worker do not change for a sink: its target is ``sink:<name>``.
"""
