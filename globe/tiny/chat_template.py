"""The Qwen2.5-VL chat template, byte for byte as Qwen ships it.

Kept identical on purpose: TRL recognises this exact string and swaps in its training variant
(with `{% generation %}` markers for assistant-only loss), and a real Qwen2.5-VL checkpoint renders
prompts the same way, so code written against the tiny model runs unchanged on the 7B one.
"""

QWEN2_5_VL_CHAT_TEMPLATE = (
    '{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}'
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}'
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    '{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}'
    'Picture {{ image_count.value }}: {% endif %}'
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}"
    '{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}'
    'Video {{ video_count.value }}: {% endif %}'
    "<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}"
    "{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}'
)
