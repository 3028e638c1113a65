"""Short names of divisions as people write them in addresses: 山西省 -> 山西, 延边朝鲜族自治州
-> 延边, 潞州区 -> 潞州."""

from __future__ import annotations

# Suffixes tried longest first; what is left must keep at least two characters.
_SUFFIXES = (
    "特别行政区", "自治区", "自治州", "自治县", "自治旗", "新区", "地区", "林区", "特区",
    "省", "市", "区", "县", "旗", "盟",
)
_PEOPLES = (
    "蒙古族 回族 藏族 维吾尔族 苗族 彝族 壮族 "
    "布依族 朝鲜族 满族 侗族 瑶族 白族 土家族 哈尼族 "
    "哈萨克族 傣族 黎族 傈僳族 佤族 畲族 拉祜族 水族 "
    "东乡族 纳西族 景颇族 柯尔克孜族 土族 达斡尔族 仫佬族 "
    "羌族 布朗族 撒拉族 毛南族 仡佬族 锡伯族 阿昌族 "
    "普米族 塔吉克族 怒族 乌孜别克族 俄罗斯族 鄂温克族 "
    "德昂族 保安族 裕固族 京族 塔塔尔族 独龙族 鄂伦春族 "
    "赫哲族 门巴族 珞巴族 基诺族 各族"
).split()
# Names drop the 族 at times (伊犁哈萨克自治州, 察布查尔锡伯自治县): strip both spellings.
_PEOPLES_LONGEST_FIRST = tuple(sorted(
    {*_PEOPLES, *(p[:-1] for p in _PEOPLES if len(p) > 2)}, key=len, reverse=True))


def short_name(name: str) -> str | None:
    """山西省 -> 山西, 延边朝鲜族自治州 -> 延边, 潞州区 -> 潞州; None when nothing usable is left
    (城区 -> 城 is too short to find in free text)."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            break
    else:
        return None
    stripped = True
    while stripped and suffix.startswith("自治"):
        stripped = False
        for people in _PEOPLES_LONGEST_FIRST:
            if stem.endswith(people) and len(stem) - len(people) >= 2:
                stem = stem[: -len(people)]
                stripped = True
                break
    return stem if len(stem) >= 2 else None
