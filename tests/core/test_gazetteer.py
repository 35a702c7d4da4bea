"""The Tibet gazetteer: data checks on messages/gazetteer.csv and the look-ups of core.gazetteer."""

import re
from pathlib import Path

import pytest

from quakealert.core.gazetteer import Gazetteer, GazetteerError, load_gazetteer

CSV = Path(__file__).resolve().parents[2] / "messages" / "gazetteer.csv"
CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
TIBETAN = re.compile(r"[\u0f00-\u0fff ]+")


@pytest.fixture(scope="module")
def gaz() -> Gazetteer:
    return load_gazetteer(CSV.read_text(encoding="utf-8"))


def test_every_tar_county_level_division_is_present(gaz):
    """The TAR has 74 county-level divisions (64 counties, 8 districts, 2 cities) and 7 prefectures."""
    tar = [p for p in gaz.places if p.province == "西藏"]
    counties = [p for p in tar if p.kind != "prefecture"]
    assert len(counties) == 74
    assert sorted(p.kind for p in counties).count("district") == 8
    assert {p.zh for p in counties if p.kind == "city"} == {"米林市", "错那市"}
    assert len([p for p in tar if p.kind == "prefecture"]) == 7


def test_keys_are_gb2260_codes_and_prefectures_exist(gaz):
    """Every key is a six-digit code; every county points at a prefecture row with its code prefix."""
    for p in gaz.places:
        assert re.fullmatch(r"\d{6}", p.key)
        if p.kind != "prefecture":
            pref = gaz.prefecture_of(p)
            assert pref is not None and pref.kind == "prefecture"
            assert p.key[:4] == pref.key[:4]


def test_no_bo_name_contains_a_cjk_character(gaz):
    """Tibetan is Tibetan: no Chinese character in any bo name."""
    assert not [p.key for p in gaz.places if CJK.search(p.bo)]


def test_every_bo_name_is_tibetan_script(gaz):
    """A non-empty bo name is Tibetan script (U+0F00–U+0FFF) and spaces only."""
    assert not [p.key for p in gaz.places if p.bo and not TIBETAN.fullmatch(p.bo)]


def test_bo_is_empty_exactly_when_missing(gaz):
    """bo_status says missing when, and only when, there is no Tibetan name."""
    assert all((p.bo == "") == (p.bo_status == "missing") for p in gaz.places)


def test_sourced_names_match_places_toml(gaz):
    """The names places.toml marks sourced are the same here, and still sourced."""
    expected = {
        "540100": "ལྷ་ས་གྲོང་ཁྱེར", "540102": "ཁྲེང་ཀོན་ཆུས", "540121": "ལྷུན་གྲུབ་རྫོང",
        "540123": "སྙེ་མོ་རྫོང", "540124": "ཆུ་ཤུར་རྫོང", "540127": "མལ་གྲོ་གུང་དཀར་རྫོང",
        "540200": "གཞིས་རྩེ་གྲོང་ཁྱེར", "540500": "ལྷོ་ཁ་གྲོང་ཁྱེར", "540300": "ཆབ་མདོ་གྲོང་ཁྱེར",
        "540600": "ནག་ཆུ་གྲོང་ཁྱེར", "542500": "མངའ་རིས་ས་ཁུལ",
    }  # fmt: skip
    for key, bo in expected.items():
        p = gaz.get(key)
        assert p is not None and (p.bo, p.bo_status) == (bo, "sourced"), key


def test_coordinates_lie_in_the_covered_region(gaz):
    """Every seat is on the Tibetan plateau or its rim (26–36°N, 78–104°E); TAR seats in 27–34°N, 78–99°E."""
    for p in gaz.places:
        assert 25.0 <= p.lat <= 36.5 and 78.0 <= p.lon <= 104.0, p
        if p.province == "西藏":
            assert 27.0 <= p.lat <= 34.0 and 78.0 <= p.lon <= 99.0, p


def test_maizhokunggar_seat(gaz):
    """墨竹工卡县's seat (Gongkar town) is about 29.84°N 91.73°E."""
    p = gaz.get("540127")
    assert p is not None and p.zh == "墨竹工卡县"
    assert p.lat == pytest.approx(29.84, abs=0.02)
    assert p.lon == pytest.approx(91.73, abs=0.02)


def test_2024_m45_epicentre_is_in_maizhokunggar_by_nearest_seat(gaz):
    """The 2024-11-07 M4.5 epicentre (29.85N 92.25E) is nearest the 墨竹工卡县 seat, about 50 km west."""
    p = gaz.county_at(29.85, 92.25)
    assert p is not None and p.zh == "墨竹工卡县"
    _, d = gaz.nearest(29.85, 92.25)
    assert d == pytest.approx(50, abs=3)


def test_dingri_2025_epicentre_nearest_seat_is_dinggye_not_dingri(gaz):
    """The 2025-01-07 Dingri M6.8 epicentre (28.50N 87.45E) is nearer the 定结县 seat than the 定日县 seat."""
    p = gaz.county_at(28.50, 87.45)
    assert p is not None and p.zh == "定结县"


def test_epicentre_county_prefers_the_agency_name(gaz):
    """With CENC's LOCATION_C the Dingri epicentre is named 定日县; without it, the nearest seat."""
    p = gaz.epicentre_county(28.50, 87.45, "西藏日喀则市定日县")
    assert p is not None and p.zh == "定日县"
    q = gaz.epicentre_county(29.85, 92.25, None)
    assert q is not None and q.zh == "墨竹工卡县"


def test_a_californian_point_has_no_county(gaz):
    """Far outside the covered area (Ridgecrest, California) there is no county."""
    assert gaz.county_at(35.77, -117.60) is None
    assert gaz.epicentre_county(35.77, -117.60, "美国加利福尼亚州") is None


def test_chengdu_is_outside_the_covered_area(gaz):
    """Chengdu is more than 200 km from every seat in the table, so it has no county."""
    assert gaz.county_at(30.66, 104.07) is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("西藏日喀则市定日县", "540223"),
        ("西藏拉萨市墨竹工卡县", "540127"),
        ("西藏那曲市双湖县", "540630"),
        ("西藏林芝市米林县", "540481"),  # the name before 2023
        ("西藏那曲地区那曲县", "540602"),  # the names before 2018
        ("四川甘孜州德格县", "513330"),  # CENC's short 州
        ("青海玉树州杂多县", "632722"),
        ("西藏林芝市朗县", "540426"),
        ("  西藏 山南市 错那市 ", "540581"),
        ("西藏阿里地区", "542500"),  # only a prefecture named
        ("四川甘孜州", "513300"),
    ],
)
def test_by_zh_name_reads_cenc_location_strings(gaz, text, key):
    """A CENC LOCATION_C string finds its county (or its prefecture when only that is named)."""
    p = gaz.by_zh_name(text)
    assert p is not None and p.key == key


def test_by_zh_name_without_a_known_place_is_none(gaz):
    """A place outside the table, or a sea area, gives None."""
    assert gaz.by_zh_name("云南昆明市五华区") is None
    assert gaz.by_zh_name("日本本州东岸近海") is None


def test_nearest_prefecture(gaz):
    """nearest() honours kinds: the nearest prefecture seat to the M4.5 epicentre is Shannan's (Tsetang)."""
    p, d = gaz.nearest(29.85, 92.25, kinds={"prefecture"})
    assert p.zh == "山南市"
    assert d == pytest.approx(82, abs=3)


def test_malformed_rows_are_rejected():
    """A bad kind, status or coordinate raises GazetteerError, not a silent row."""
    head = "key,kind,zh,zh_full,zh_alias,bo,bo_status,en,lat,lon,prefecture,province\n"
    good = "540127,county,墨竹工卡县,西藏拉萨市墨竹工卡县,,,missing,M,29.8,91.7,540100,西藏\n"
    assert load_gazetteer(head + good).places[0].zh == "墨竹工卡县"
    for bad in (
        good.replace("county", "village"),
        good.replace("missing", "sourced"),
        good.replace("29.8", "129.8"),
        good.replace("91.7", "east"),
    ):
        with pytest.raises(GazetteerError):
            load_gazetteer(head + bad)
    with pytest.raises(GazetteerError):
        load_gazetteer("key,zh\n1,x\n")
