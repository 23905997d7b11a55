"""Whisper's languages: ISO 639-1 codes and the names whisper.cpp's server reports."""

from __future__ import annotations

LANGUAGES: dict[str, str] = dict(
    en="english",
    zh="chinese",
    de="german",
    es="spanish",
    ru="russian",
    ko="korean",
    fr="french",
    ja="japanese",
    pt="portuguese",
    tr="turkish",
    pl="polish",
    ca="catalan",
    nl="dutch",
    ar="arabic",
    sv="swedish",
    it="italian",
    id="indonesian",
    hi="hindi",
    fi="finnish",
    vi="vietnamese",
    he="hebrew",
    uk="ukrainian",
    el="greek",
    ms="malay",
    cs="czech",
    ro="romanian",
    da="danish",
    hu="hungarian",
    ta="tamil",
    no="norwegian",
    th="thai",
    ur="urdu",
    hr="croatian",
    bg="bulgarian",
    lt="lithuanian",
    la="latin",
    mi="maori",
    ml="malayalam",
    cy="welsh",
    sk="slovak",
    te="telugu",
    fa="persian",
    lv="latvian",
    bn="bengali",
    sr="serbian",
    az="azerbaijani",
    sl="slovenian",
    kn="kannada",
    et="estonian",
    mk="macedonian",
    br="breton",
    eu="basque",
    is_="icelandic",
    hy="armenian",
    ne="nepali",
    mn="mongolian",
    bs="bosnian",
    kk="kazakh",
    sq="albanian",
    sw="swahili",
    gl="galician",
    mr="marathi",
    pa="punjabi",
    si="sinhala",
    km="khmer",
    sn="shona",
    yo="yoruba",
    so="somali",
    af="afrikaans",
    oc="occitan",
    ka="georgian",
    be="belarusian",
    tg="tajik",
    sd="sindhi",
    gu="gujarati",
    am="amharic",
    yi="yiddish",
    lo="lao",
    uz="uzbek",
    fo="faroese",
    ht="haitian creole",
    ps="pashto",
    tk="turkmen",
    nn="nynorsk",
    mt="maltese",
    sa="sanskrit",
    lb="luxembourgish",
    my="myanmar",
    bo="tibetan",
    tl="tagalog",
    mg="malagasy",
    as_="assamese",
    tt="tatar",
    haw="hawaiian",
    ln="lingala",
    ha="hausa",
    ba="bashkir",
    jw="javanese",
    su="sundanese",
    yue="cantonese",
)
# "is" and "as" are Python keywords, hence the trailing underscore above.
LANGUAGES = {code.rstrip("_"): name for code, name in LANGUAGES.items()}
_BY_NAME = {name: code for code, name in LANGUAGES.items()}
AUTO = ("", "auto")


def normalize_language(value: str | None) -> str | None:
    """A code for a known language, ``None`` for auto-detect; raises ``KeyError`` otherwise."""
    if value is None or value.strip().lower() in AUTO:
        return None
    key = value.strip().lower()
    if key in LANGUAGES:
        return key
    if key in _BY_NAME:
        return _BY_NAME[key]
    # Accept regional tags such as en-US or pt_BR.
    base = key.replace("_", "-").split("-")[0]
    if base in LANGUAGES:
        return base
    raise KeyError(value)


def language_code(reported: str) -> str:
    """A code for whatever an engine reported (code or full name); unknown values pass through."""
    key = reported.strip().lower()
    return _BY_NAME.get(key, key)
