"""Templates, pure: locale tags and their fallback, a template's content checks, and rendering
in the sandbox with strict variables."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from pushgate.domain import locales, rendering
from pushgate.domain.message import Message
from pushgate.domain.templates import Content
from pushgate.errors import InvalidInputError
from pushgate.sending import templates
from pushgate.store.tables import Template


def template(variants: dict[str, Any], default: str = "en", version: int = 1) -> Template:
    content = Content.model_validate({"default_locale": default, "variants": variants})
    return Template(
        code="welcome",
        version=version,
        default_locale=content.default_locale,
        variants=content.stored_variants(),
    )


WELCOME = template(
    {
        "en": {
            "title": "Hello {{ name }}",
            "body": "{{ count }} new",
            "data": {"n": "{{ count }}"},
        },
        "fr": {"title": "Bonjour {{ name }}", "body": "{{ count }} nouveaux"},
        "fr-CA": {"title": "Allo {{ name }}", "body": "{{ count }} nouveaux"},
    }
)


@pytest.mark.parametrize(
    ("tag", "canonical"),
    [
        ("en", "en"),
        ("FR-ca", "fr-CA"),
        ("fr_CA", "fr-CA"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("not a tag", None),
        ("e", None),
    ],
)
def test_locale_tags_are_compared_in_one_spelling(tag: str, canonical: str | None) -> None:
    assert locales.normalise(tag) == canonical


def test_a_bad_locale_is_named_in_the_error_message() -> None:
    # Found by the OpenAPI fuzz: the message read "{value!r} is not a locale tag ..."
    class Asked(BaseModel):
        locale: locales.Locale

    with pytest.raises(ValidationError) as caught:
        Asked(locale="0")

    assert caught.value.errors()[0]["msg"] == "'0' is not a locale tag like en, fr-CA or zh-Hant-TW"


@pytest.mark.parametrize(
    ("wanted", "variant"),
    [
        ("fr-CA", "fr-CA"),
        ("fr-BE", "fr"),
        ("fr", "fr"),
        ("de-DE", "en"),
        (None, "en"),
        ("zh-Hant-TW", "zh"),
    ],
)
def test_a_locale_falls_back_to_its_parent_then_to_the_default(
    wanted: str | None, variant: str
) -> None:
    assert locales.resolve(wanted, {"en", "fr", "fr-CA", "zh"}, "en") == variant


def test_every_variant_renders_with_the_variables_and_the_default_is_the_message() -> None:
    base = Message(icon="https://e.example/i.png", ttl=60)

    rendered = templates.render(WELCOME, base, {"name": "Ada", "count": 3})

    assert rendered.message.title == "Hello Ada"
    assert rendered.message.data == {"n": "3"}
    assert rendered.message.icon == "https://e.example/i.png"  # the request's own fields stay
    assert rendered.messages["fr"].body == "3 nouveaux"
    assert rendered.messages["fr-CA"].title == "Allo Ada"
    assert set(rendered.renders() or {}) == {"fr", "fr-CA"}
    assert rendered.template == {
        "code": "welcome",
        "version": 1,
        "default_locale": "en",
        "locales": ["fr", "fr-CA"],
    }


def test_a_forced_locale_renders_only_its_variant_through_the_fallback() -> None:
    rendered = templates.render(WELCOME, Message(), {"name": "Ada", "count": 1}, forced="fr-BE")

    assert rendered.message.title == "Bonjour Ada"
    assert rendered.renders() is None
    assert rendered.template["locale"] == "fr"


def refusal(variables: dict[str, Any], source: str = "Hello {{ name }}") -> InvalidInputError:
    with pytest.raises(InvalidInputError) as caught:
        templates.render(template({"en": {"title": source}}), Message(), variables)
    return caught.value


def test_a_missing_variable_is_refused_naming_it() -> None:
    error = refusal({})

    assert error.field == "variables.name"
    assert error.code == "missing_variable"
    assert "'name' is missing" in error.message
    assert "welcome" in error.message


def test_a_missing_key_inside_a_variable_is_named_by_its_path() -> None:
    error = refusal({"user": {"first": "Ada"}}, "Hi {{ user.last }}")

    assert error.field == "variables.user.last"


def test_a_variable_of_the_wrong_type_is_refused_naming_it() -> None:
    error = refusal({"price": "cheap"}, "Only {{ price | round(2) }}")

    assert error.field == "variables.price"
    assert error.code == "invalid_variable"


def test_a_variable_that_is_not_needed_is_ignored_and_is_defined_tests_work() -> None:
    rendered = templates.render(
        template({"en": {"title": "Hi{% if name is defined %} {{ name }}{% endif %}"}}),
        Message(),
        {"other": 1},
    )

    assert rendered.message.title == "Hi"


@pytest.mark.parametrize(
    "source",
    [
        "{{ x.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ items.append(1) }}",
        "{{ 'x' * 1000000 }}",
        "{{ 'x' | center(10000000) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ 10 ** 100000 }}",
        "{{ ((10 ** 60) ** 60) ** 60 }}",
        "{{ 'x'.ljust(1000000) }}",
        "{{ '{:>9999999}'.format(1) }}",
        "{{ '{:>{w}}'.format(1, w=w) }}",
        "{{ '%*d' % (w, 1) }}",
        "{{ '{:.9999999f}'.format(1.5) }}",
        "{{ '%9999999d' | format(1) }}",
        "{{ 'x' | indent(1000000) }}",
    ],
)
def test_the_sandbox_refuses_internals_changes_and_huge_values(source: str) -> None:
    with pytest.raises(rendering.RenderError) as caught:
        rendering.render_text(source, {"x": "s", "items": [], "w": 99_999_999})

    assert caught.value.kind == "template_unsafe"


def test_a_key_missing_in_a_value_the_template_made_names_no_variable() -> None:
    with pytest.raises(rendering.RenderError) as caught:
        rendering.render_text("{{ ({'a': 1}).b }}", {})

    assert (caught.value.kind, caught.value.variable) == ("missing_variable", None)


def test_an_error_on_a_line_without_variables_blames_none() -> None:
    with pytest.raises(rendering.RenderError) as caught:
        rendering.render_text("{{ 1 / 0 }}", {"x": 1})

    assert (caught.value.kind, caught.value.variable) == ("invalid_variable", None)


def test_a_rendering_longer_than_its_field_is_refused() -> None:
    with pytest.raises(rendering.RenderError) as caught:
        rendering.render_text("{% for i in range(5000) %}ab{% endfor %}", {})

    assert caught.value.kind == "render_too_long"


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("Call 0800123456 about {{ '%s' % order }}", "Call 0800123456 about 1234567"),
        ("{{ '{:,}'.format(order) }} points", "1,234,567 points"),
        ("{{ '%08.2f' | format(2.5) }}", "00002.50"),
        ("{{ 'ab'.ljust(4, '.') }}|{{ 'x' | center(3) }}", "ab..| x "),
    ],
)
def test_ordinary_formatting_is_allowed(source: str, text: str) -> None:
    assert rendering.render_text(source, {"order": 1234567}) == text


def test_json_values_print_in_json_spelling() -> None:
    variables = {"yes": True, "none": None, "obj": {"a": [1, "b"]}}

    text = rendering.render_text("{{ yes }}|{{ none }}|{{ obj }}", variables)

    assert text == 'true||{"a":[1,"b"]}'


def test_text_is_not_html_escaped() -> None:
    assert rendering.render_text("{{ a }}", {"a": "<b>Tom & Jerry</b>"}) == "<b>Tom & Jerry</b>"


def test_strings_in_data_and_platform_overrides_are_rendered() -> None:
    fields = templates.render_variant(
        template({"en": {"data": {"id": "o-{{ id }}"}, "fcm": {"android": {"tag": "{{ id }}"}}}}),
        "en",
        {"id": 7},
    )

    assert fields["data"] == {"id": "o-7"}
    assert fields["fcm"] == {"android": {"tag": "7"}}


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ({"default_locale": "de", "variants": {"en": {"title": "x"}}}, "default_locale"),
        ({"default_locale": "en", "variants": {"en": {"title": "Hi {{ name"}}}, "title"),
        ({"default_locale": "en", "variants": {"en": {"title": "{{ x._secret }}"}}}, "title"),
        (
            {"default_locale": "en", "variants": {"en": {"title": "a"}, "EN": {"body": "b"}}},
            "twice",
        ),
        ({"default_locale": "en", "variants": {"english!": {"title": "a"}}}, "locale tag"),
        ({"default_locale": "en", "variants": {"en": {}}}, "nothing to send"),
        ({"default_locale": "en", "variants": {"en": {"webpush": {"a": ["{% if %}"]}}}}, "a.0"),
    ],
)
def test_a_bad_template_is_refused_when_saved(content: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Content.model_validate(content)

    assert where in str(caught.value)
