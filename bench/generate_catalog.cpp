// bench/generate_catalog: writes a deterministic CommerceML 2.07 catalog of N products, the way
// УТ 11 exports it (import.xml + offers.xml), a changes-only offers package, and the same rows
// as TSV for the COPY baseline.
//
//   generate_catalog --products N --out DIR [--changed-percent P]
//
// DIR/import.xml         Классификатор (nested groups, 4 properties) + Каталог (N Товар)
// DIR/offers.xml         ПакетПредложений: 3 price types, 4 warehouses; one Предложение per
//                        product, or 3 "product#characteristic" offers for every fifth product
// DIR/offers_delta.xml   ПакетПредложений СодержитТолькоИзменения="true": every offer whose
//                        index is a multiple of 100/P, with new prices and stock
// DIR/{products,offers,prices,stock}.tsv   what obmen stores, row for row (COPY text format)
//
// Prints "key=value" lines (counts and file sizes) on stdout. Same N → same bytes.
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;

// Buffered output to a file; XML and TSV are written in large pieces.
class out_file {
 public:
  explicit out_file(const fs::path& p) : f_(std::fopen(p.c_str(), "wb")), path_(p) {
    if (!f_) throw std::runtime_error("cannot write " + p.string());
    buf_.reserve(1 << 20);
  }
  ~out_file() { close(); }
  out_file(const out_file&) = delete;
  out_file& operator=(const out_file&) = delete;

  out_file& operator<<(std::string_view s) {
    buf_.append(s);
    if (buf_.size() >= (1 << 20)) flush();
    return *this;
  }
  out_file& operator<<(std::uint64_t n) { return *this << std::string_view(std::to_string(n)); }
  void close() {
    if (!f_) return;
    flush();
    if (std::fclose(f_) != 0) throw std::runtime_error("cannot write " + path_.string());
    f_ = nullptr;
  }
  std::uintmax_t size() const { return fs::file_size(path_); }

 private:
  void flush() {
    if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size())
      throw std::runtime_error("cannot write " + path_.string());
    buf_.clear();
  }
  std::FILE* f_;
  fs::path path_;
  std::string buf_;
};

std::uint64_t mix(std::uint64_t x) {  // splitmix64
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
std::uint64_t rnd(std::uint64_t a, std::uint64_t b) { return mix(mix(a) ^ (b * 0x2545F4914F6CDD1Dull)); }

// A GUID as 1C writes them, derived from (kind, index).
std::string guid(std::uint64_t kind, std::uint64_t i) {
  const std::uint64_t a = rnd(kind, i), b = rnd(kind + 1000, i);
  char s[40];
  std::snprintf(s, sizeof s, "%08" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%012" PRIx64, a >> 32,
                (a >> 16) & 0xFFFF, a & 0xFFFF, b >> 48, b & std::uint64_t{0xFFFFFFFFFFFF});
  return s;
}

template <std::size_t N>
std::string_view pick(const std::string_view (&list)[N], std::uint64_t r) {
  return list[r % N];
}

constexpr std::string_view kinds[] = {"Футболка", "Рубашка", "Куртка", "Брюки", "Платье", "Свитер", "Шорты",
                                      "Кроссовки", "Ботинки", "Рюкзак", "Сумка", "Шапка", "Перчатки", "Носки"};
constexpr std::string_view brands[] = {"Северный ветер", "Уральские мастера", "Байкал", "Камчатка", "Волжанка",
                                       "Сибирь", "Алтай", "Ладога"};
constexpr std::string_view colors[] = {"красный", "синий", "зелёный", "чёрный", "белый", "серый",
                                       "бежевый", "жёлтый", "коричневый", "голубой", "розовый", "бордовый"};
constexpr std::string_view materials[] = {"хлопок", "шерсть", "полиэстер", "лён", "кожа", "вискоза"};
constexpr std::string_view countries[] = {"Россия", "Беларусь", "Казахстан", "Китай", "Турция", "Узбекистан"};
constexpr std::string_view sizes[] = {"XS", "S", "M", "L", "XL", "XXL"};
constexpr std::string_view sentences[] = {
    "Изделие выполнено из прочного материала, который сохраняет форму и цвет после многочисленных стирок.",
    "Удобный крой не сковывает движений и подходит для повседневной носки в городе и за его пределами.",
    "Плоские швы не натирают кожу, а усиленные края служат долго даже при ежедневном использовании.",
    "Модель хорошо сочетается с базовыми вещами гардероба и подходит как для работы, так и для отдыха.",
    "Рекомендуется деликатная стирка при температуре не выше сорока градусов и сушка в расправленном виде.",
    "Фурнитура изготовлена из металла с антикоррозийным покрытием и выдерживает значительные нагрузки.",
    "Товар прошёл обязательную сертификацию и соответствует требованиям технического регламента.",
    "Размерная сетка соответствует российским стандартам; при выборе размера ориентируйтесь на таблицу.",
    "Упаковка из переработанного картона защищает изделие при транспортировке и хранении на складе.",
    "Коллекция разработана с учётом пожеланий покупателей и отзывов о предыдущих моделях серии."};

struct sizes_t {
  std::uint64_t products = 0, groups = 0;
};

// Groups: 12 roots × 5 children × 4 grandchildren; products sit in the 240 leaves.
constexpr std::uint64_t roots = 12, children = 5, grandchildren = 4;
constexpr std::uint64_t leaves = roots * children * grandchildren;
std::uint64_t leaf_group_index(std::uint64_t leaf) {  // group numbering: roots, then per root its subtree
  const std::uint64_t r = leaf / (children * grandchildren), rest = leaf % (children * grandchildren);
  const std::uint64_t c = rest / grandchildren, g = rest % grandchildren;
  return r * (1 + children * (1 + grandchildren)) + 1 + c * (1 + grandchildren) + 1 + g;
}

constexpr std::uint64_t price_types = 3, warehouses = 4, variants = 3;
constexpr std::string_view price_type_names[] = {"Розничная", "Оптовая", "Дилерская"};
constexpr std::string_view warehouse_names[] = {"Москва, Южный порт", "Санкт-Петербург, Шушары", "Екатеринбург",
                                                "Новосибирск, Толмачёво"};

// Property ids (kind 20), option ids (kind 21 + property).
constexpr std::string_view property_names[] = {"Цвет", "Материал", "Страна производства", "Вес, кг"};

struct product {
  std::uint64_t i;
  std::string id, name, sku, barcode, code, description, group, version, weight, full_name;
  std::uint64_t color, material, country, kind;
  bool has_variants;
};

product make_product(std::uint64_t i) {
  product p;
  p.i = i;
  p.id = guid(1, i);
  p.kind = rnd(2, i);
  p.color = rnd(3, i) % std::size(colors);
  p.material = rnd(4, i) % std::size(materials);
  p.country = rnd(5, i) % std::size(countries);
  p.has_variants = i % 5 == 4;
  std::string kind(pick(kinds, p.kind)), brand(pick(brands, rnd(6, i)));
  p.sku = "АРТ-" + std::to_string(100000 + i);
  p.name = kind + " «" + brand + "» модель " + std::to_string(rnd(7, i) % 9000 + 1000) + ", " +
           std::string(colors[p.color]);
  p.full_name = p.name + ", " + std::string(materials[p.material]) + ", " + std::string(countries[p.country]);
  p.barcode = std::to_string(4600000000000ull + rnd(8, i) % 1000000000ull);
  p.code = "00-" + std::to_string(10000000 + i);
  for (int s = 0; s < 2; ++s) {
    if (s) p.description += ' ';
    p.description += pick(sentences, rnd(9 + s, i));
  }
  p.group = guid(10, leaf_group_index(rnd(11, i) % leaves));
  p.version = "AAAA" + std::to_string(rnd(12, i) % 1000000) + "==";
  char w[32];
  std::snprintf(w, sizeof w, "%" PRIu64 ".%03" PRIu64, rnd(13, i) % 5, rnd(14, i) % 1000);
  p.weight = w;
  return p;
}

std::string price_of(std::uint64_t offer_key, std::uint64_t type, bool changed) {
  std::uint64_t kop = 50000 + rnd(30 + type, offer_key) % 2000000;  // 500.00 … 20 500.00
  kop = kop * (100 - 10 * type) / 100;                               // opt, dealer cheaper
  if (changed) kop = kop * 105 / 100;
  char s[32];
  std::snprintf(s, sizeof s, "%" PRIu64 ".%02" PRIu64, kop / 100, kop % 100);
  return s;
}

std::uint64_t stock_of(std::uint64_t offer_key, std::uint64_t warehouse, bool changed) {
  return rnd(40 + warehouse, offer_key) % 200 + (changed ? 7 : 0);
}

// COPY text format: the generator's own text has no tabs, newlines or backslashes.
std::string_view tsv(std::string_view s) { return s.empty() ? std::string_view("\\N") : s; }

void write_header(out_file& f) {
  f << "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
       "<КоммерческаяИнформация xmlns=\"urn:1C.ru:commerceml_2\" xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" "
       "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" ВерсияСхемы=\"2.07\" "
       "ДатаФормирования=\"2024-03-01T10:00:00\">\n";
}

constexpr std::string_view owner =
    "\t\t<Владелец>\n\t\t\t<Ид>e23f663b-18fc-11e7-80c2-0cc47ab29cd1</Ид>\n"
    "\t\t\t<Наименование>Торговый дом ООО</Наименование>\n"
    "\t\t\t<ОфициальноеНаименование>Общество с ограниченной ответственностью «Торговый дом»</ОфициальноеНаименование>\n"
    "\t\t\t<ИНН>7700000000</ИНН>\n\t\t\t<КПП>770001001</КПП>\n\t\t</Владелец>\n";
const std::string classifier_id = "b21db898-7f82-46d8-a5ca-7c4f1d200a13";

void write_groups(out_file& f) {
  std::uint64_t n = 0;
  auto group_open = [&](int depth, const std::string& name) {
    const std::string tabs(static_cast<std::size_t>(depth), '\t');
    f << tabs << "<Группа>\n" << tabs << "\t<Ид>" << guid(10, n++) << "</Ид>\n" << tabs << "\t<Наименование>" << name
      << "</Наименование>\n";
  };
  f << "\t\t<Группы>\n";
  for (std::uint64_t r = 0; r < roots; ++r) {
    group_open(3, std::string(kinds[r % std::size(kinds)]) + " и аксессуары " + std::to_string(r + 1));
    f << "\t\t\t\t<Группы>\n";
    for (std::uint64_t c = 0; c < children; ++c) {
      group_open(5, "Раздел " + std::to_string(r + 1) + "." + std::to_string(c + 1));
      f << "\t\t\t\t\t\t<Группы>\n";
      for (std::uint64_t g = 0; g < grandchildren; ++g) {
        group_open(7, "Подраздел " + std::to_string(r + 1) + "." + std::to_string(c + 1) + "." + std::to_string(g + 1));
        f << "\t\t\t\t\t\t\t</Группа>\n";
      }
      f << "\t\t\t\t\t\t</Группы>\n\t\t\t\t\t</Группа>\n";
    }
    f << "\t\t\t\t</Группы>\n\t\t\t</Группа>\n";
  }
  f << "\t\t</Группы>\n";
}

template <std::size_t N>
void write_reference_property(out_file& f, std::uint64_t k, const std::string_view (&options)[N]) {
  f << "\t\t\t<Свойство>\n\t\t\t\t<Ид>" << guid(20, k) << "</Ид>\n\t\t\t\t<Наименование>" << property_names[k]
    << "</Наименование>\n\t\t\t\t<ТипЗначений>Справочник</ТипЗначений>\n\t\t\t\t<ВариантыЗначений>\n";
  for (std::uint64_t o = 0; o < N; ++o)
    f << "\t\t\t\t\t<Справочник>\n\t\t\t\t\t\t<ИдЗначения>" << guid(21 + k, o) << "</ИдЗначения>\n\t\t\t\t\t\t<Значение>"
      << options[o] << "</Значение>\n\t\t\t\t\t</Справочник>\n";
  f << "\t\t\t\t</ВариантыЗначений>\n\t\t\t</Свойство>\n";
}

void write_import(const fs::path& dir, std::uint64_t n, out_file& tsv_products) {
  out_file f(dir / "import.xml");
  write_header(f);
  f << "\t<Классификатор>\n\t\t<Ид>" << classifier_id << "</Ид>\n\t\t<Наименование>Классификатор (Основной каталог товаров)</Наименование>\n"
    << owner;
  write_groups(f);
  f << "\t\t<Свойства>\n";
  write_reference_property(f, 0, colors);
  write_reference_property(f, 1, materials);
  f << "\t\t\t<Свойство>\n\t\t\t\t<Ид>" << guid(20, 2) << "</Ид>\n\t\t\t\t<Наименование>" << property_names[2]
    << "</Наименование>\n\t\t\t\t<ТипЗначений>Строка</ТипЗначений>\n\t\t\t</Свойство>\n";
  f << "\t\t\t<Свойство>\n\t\t\t\t<Ид>" << guid(20, 3) << "</Ид>\n\t\t\t\t<Наименование>" << property_names[3]
    << "</Наименование>\n\t\t\t\t<ТипЗначений>Число</ТипЗначений>\n\t\t\t</Свойство>\n";
  f << "\t\t</Свойства>\n\t</Классификатор>\n";
  f << "\t<Каталог СодержитТолькоИзменения=\"false\">\n\t\t<Ид>" << classifier_id
    << "</Ид>\n\t\t<ИдКлассификатора>" << classifier_id
    << "</ИдКлассификатора>\n\t\t<Наименование>Основной каталог товаров</Наименование>\n"
    << owner << "\t\t<Товары>\n";
  for (std::uint64_t i = 0; i < n; ++i) {
    const product p = make_product(i);
    f << "\t\t\t<Товар>\n\t\t\t\t<Ид>" << p.id << "</Ид>\n\t\t\t\t<НомерВерсии>" << p.version
      << "</НомерВерсии>\n\t\t\t\t<ПометкаУдаления>false</ПометкаУдаления>\n\t\t\t\t<Штрихкод>" << p.barcode
      << "</Штрихкод>\n\t\t\t\t<Артикул>" << p.sku << "</Артикул>\n\t\t\t\t<Наименование>" << p.name
      << "</Наименование>\n"
         "\t\t\t\t<БазоваяЕдиница Код=\"796 \" НаименованиеПолное=\"Штука\" МеждународноеСокращение=\"PCE\">шт"
         "</БазоваяЕдиница>\n\t\t\t\t<Группы>\n\t\t\t\t\t<Ид>"
      << p.group << "</Ид>\n\t\t\t\t</Группы>\n\t\t\t\t<Описание>" << p.description
      << "</Описание>\n\t\t\t\t<Изготовитель>\n\t\t\t\t\t<Ид>" << guid(50, rnd(6, i) % std::size(brands))
      << "</Ид>\n\t\t\t\t\t<Наименование>" << pick(brands, rnd(6, i))
      << "</Наименование>\n\t\t\t\t</Изготовитель>\n\t\t\t\t<ЗначенияСвойств>\n";
    auto value = [&](std::uint64_t k, std::string_view v) {
      f << "\t\t\t\t\t<ЗначенияСвойства>\n\t\t\t\t\t\t<Ид>" << guid(20, k) << "</Ид>\n\t\t\t\t\t\t<Значение>" << v
        << "</Значение>\n\t\t\t\t\t</ЗначенияСвойства>\n";
    };
    value(0, guid(21, p.color));
    value(1, guid(22, p.material));
    value(2, countries[p.country]);
    value(3, p.weight);
    f << "\t\t\t\t</ЗначенияСвойств>\n\t\t\t\t<СтавкиНалогов>\n\t\t\t\t\t<СтавкаНалога>\n"
         "\t\t\t\t\t\t<Наименование>НДС</Наименование>\n\t\t\t\t\t\t<Ставка>20</Ставка>\n"
         "\t\t\t\t\t</СтавкаНалога>\n\t\t\t\t</СтавкиНалогов>\n\t\t\t\t<ЗначенияРеквизитов>\n";
    auto requisite = [&](std::string_view name, std::string_view v) {
      f << "\t\t\t\t\t<ЗначениеРеквизита>\n\t\t\t\t\t\t<Наименование>" << name << "</Наименование>\n\t\t\t\t\t\t<Значение>"
        << v << "</Значение>\n\t\t\t\t\t</ЗначениеРеквизита>\n";
    };
    requisite("ВидНоменклатуры", pick(kinds, p.kind));
    requisite("ТипНоменклатуры", "Товар");
    requisite("Полное наименование", p.full_name);
    f << "\t\t\t\t</ЗначенияРеквизитов>\n\t\t\t</Товар>\n";

    // The row obmen stores (portal.products), in the column order of the baseline table.
    const std::string attributes = std::string("{\"Цвет\": \"") + std::string(colors[p.color]) +
                                   "\", \"Материал\": \"" + std::string(materials[p.material]) +
                                   "\", \"Страна производства\": \"" + std::string(countries[p.country]) +
                                   "\", \"Вес, кг\": \"" + p.weight + "\"}";
    const std::string requisites = "{\"ВидНоменклатуры\": \"" + std::string(pick(kinds, p.kind)) +
                                   "\", \"ТипНоменклатуры\": \"Товар\", \"Полное наименование\": \"" + p.full_name +
                                   "\"}";
    tsv_products << p.id << "\t" << p.sku << "\t" << p.name << "\t" << p.full_name << "\t" << p.description << "\t"
                 << p.group << "\tшт\t796\t" << p.barcode << "\t" << p.code << "\t" << pick(brands, rnd(6, i))
                 << "\t20\t" << attributes << "\t" << requisites << "\t" << p.version << "\tt\n";
  }
  f << "\t\t</Товары>\n\t</Каталог>\n</КоммерческаяИнформация>\n";
}

struct offer_counts {
  std::uint64_t offers = 0, prices = 0, stock = 0;
};

// One offers package; `every` > 0 keeps only offers whose running index is a multiple of it,
// with changed prices and stock (the changes-only package).
offer_counts write_offers(const fs::path& file, std::uint64_t n, std::uint64_t every, out_file* tsv_offers,
                          out_file* tsv_prices, out_file* tsv_stock) {
  out_file f(file);
  const bool delta = every > 0;
  write_header(f);
  f << "\t<Классификатор>\n\t\t<Ид>" << classifier_id
    << "</Ид>\n\t\t<Наименование>Классификатор (Основной каталог товаров)</Наименование>\n"
    << owner << "\t</Классификатор>\n";
  f << "\t<ПакетПредложений СодержитТолькоИзменения=\"" << (delta ? "true" : "false") << "\">\n\t\t<Ид>"
    << classifier_id << "#</Ид>\n\t\t<Наименование>Пакет предложений (Основной каталог товаров)</Наименование>\n"
    << "\t\t<ИдКаталога>" << classifier_id << "</ИдКаталога>\n\t\t<ИдКлассификатора>" << classifier_id
    << "</ИдКлассификатора>\n"
    << owner << "\t\t<ТипыЦен>\n";
  for (std::uint64_t t = 0; t < price_types; ++t)
    f << "\t\t\t<ТипЦены>\n\t\t\t\t<Ид>" << guid(60, t) << "</Ид>\n\t\t\t\t<Наименование>" << price_type_names[t]
      << "</Наименование>\n\t\t\t\t<Валюта>RUB</Валюта>\n\t\t\t\t<Налог>\n\t\t\t\t\t<Наименование>НДС</Наименование>\n"
         "\t\t\t\t\t<УчтеноВСумме>true</УчтеноВСумме>\n\t\t\t\t\t<Акциз>false</Акциз>\n\t\t\t\t</Налог>\n"
         "\t\t\t</ТипЦены>\n";
  f << "\t\t</ТипыЦен>\n\t\t<Склады>\n";
  for (std::uint64_t w = 0; w < warehouses; ++w)
    f << "\t\t\t<Склад>\n\t\t\t\t<Ид>" << guid(70, w) << "</Ид>\n\t\t\t\t<Наименование>" << warehouse_names[w]
      << "</Наименование>\n\t\t\t</Склад>\n";
  f << "\t\t</Склады>\n\t\t<Предложения>\n";

  offer_counts c;
  std::uint64_t running = 0;
  auto offer = [&](const product& p, int variant) {
    const std::uint64_t key = running++;
    if (delta && key % every != 0) return;
    std::string id = p.id, characteristic, name = p.name, sku = p.sku;
    std::string size, characteristics = "[]";
    if (variant >= 0) {
      characteristic = guid(80, p.i * variants + static_cast<std::uint64_t>(variant));
      id += "#" + characteristic;
      size = std::string(sizes[(rnd(81, p.i) + static_cast<std::uint64_t>(variant)) % std::size(sizes)]);
      name += " (" + std::string(colors[p.color]) + ", " + size + ")";
      sku += "-" + size;
      characteristics = "[{\"name\": \"Цвет\", \"value\": \"" + std::string(colors[p.color]) +
                        "\"}, {\"name\": \"Размер\", \"value\": \"" + size + "\"}]";
    }
    std::uint64_t total = 0;
    std::uint64_t q[warehouses];
    for (std::uint64_t w = 0; w < warehouses; ++w) total += q[w] = stock_of(key, w, delta);
    f << "\t\t\t<Предложение>\n\t\t\t\t<Ид>" << id << "</Ид>\n\t\t\t\t<Артикул>" << sku
      << "</Артикул>\n\t\t\t\t<Наименование>" << name
      << "</Наименование>\n"
         "\t\t\t\t<БазоваяЕдиница Код=\"796 \" НаименованиеПолное=\"Штука\" МеждународноеСокращение=\"PCE\"/>\n";
    if (variant >= 0)
      f << "\t\t\t\t<ХарактеристикиТовара>\n\t\t\t\t\t<ХарактеристикаТовара>\n\t\t\t\t\t\t<Наименование>Цвет</Наименование>\n"
           "\t\t\t\t\t\t<Значение>"
        << colors[p.color]
        << "</Значение>\n\t\t\t\t\t</ХарактеристикаТовара>\n\t\t\t\t\t<ХарактеристикаТовара>\n"
           "\t\t\t\t\t\t<Наименование>Размер</Наименование>\n\t\t\t\t\t\t<Значение>"
        << size << "</Значение>\n\t\t\t\t\t</ХарактеристикаТовара>\n\t\t\t\t</ХарактеристикиТовара>\n";
    f << "\t\t\t\t<Цены>\n";
    for (std::uint64_t t = 0; t < price_types; ++t) {
      const std::string v = price_of(key, t, delta);
      f << "\t\t\t\t\t<Цена>\n\t\t\t\t\t\t<ИдТипаЦены>"
        << guid(60, t) << "</ИдТипаЦены>\n\t\t\t\t\t\t<ЦенаЗаЕдиницу>" << v
        << "</ЦенаЗаЕдиницу>\n\t\t\t\t\t\t<Валюта>RUB</Валюта>\n\t\t\t\t\t\t<Единица>шт</Единица>\n"
           "\t\t\t\t\t\t<Коэффициент>1</Коэффициент>\n\t\t\t\t\t</Цена>\n";
      if (tsv_prices) *tsv_prices << id << "\t" << guid(60, t) << "\t" << v << "\tRUB\tшт\t1\n";
      ++c.prices;
    }
    f << "\t\t\t\t</Цены>\n\t\t\t\t<Количество>" << total << "</Количество>\n";
    for (std::uint64_t w = 0; w < warehouses; ++w) {
      f << "\t\t\t\t<Склад ИдСклада=\"" << guid(70, w) << "\" КоличествоНаСкладе=\"" << q[w] << "\"/>\n";
      if (tsv_stock) *tsv_stock << id << "\t" << guid(70, w) << "\t" << q[w] << "\n";
      ++c.stock;
    }
    f << "\t\t\t</Предложение>\n";
    if (tsv_offers)
      *tsv_offers << id << "\t" << p.id << "\t" << tsv(characteristic) << "\t" << name << "\t" << sku << "\t\\N\t"
                  << characteristics << "\t" << total << "\t\\N\tt\n";
    ++c.offers;
  };
  for (std::uint64_t i = 0; i < n; ++i) {
    const product p = make_product(i);
    if (p.has_variants)
      for (int v = 0; v < static_cast<int>(variants); ++v) offer(p, v);
    else
      offer(p, -1);
  }
  f << "\t\t</Предложения>\n\t</ПакетПредложений>\n</КоммерческаяИнформация>\n";
  return c;
}

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: generate_catalog --products N --out DIR [--changed-percent P]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t n = 100000;
  double changed_percent = 1.0;
  fs::path out;
  for (int a = 1; a < argc; ++a) {
    const std::string_view arg = argv[a];
    if (a + 1 >= argc) usage();
    if (arg == "--products") n = std::strtoull(argv[++a], nullptr, 10);
    else if (arg == "--out") out = argv[++a];
    else if (arg == "--changed-percent") changed_percent = std::strtod(argv[++a], nullptr);
    else usage();
  }
  if (out.empty() || n == 0 || changed_percent <= 0 || changed_percent > 100) usage();
  try {
    fs::create_directories(out);
    out_file products(out / "products.tsv"), offers(out / "offers.tsv"), prices(out / "prices.tsv"),
        stock(out / "stock.tsv");
    write_import(out, n, products);
    const auto full = write_offers(out / "offers.xml", n, 0, &offers, &prices, &stock);
    const auto every = static_cast<std::uint64_t>(100.0 / changed_percent + 0.5);
    const auto delta = write_offers(out / "offers_delta.xml", n, every < 1 ? 1 : every, nullptr, nullptr, nullptr);
    products.close();
    offers.close();
    prices.close();
    stock.close();
    std::printf("products=%" PRIu64 "\ngroups=%" PRIu64 "\noffers=%" PRIu64 "\nprices=%" PRIu64 "\nstock=%" PRIu64
                "\ndelta_offers=%" PRIu64 "\ndelta_prices=%" PRIu64 "\ndelta_stock=%" PRIu64 "\n",
                n, roots * (1 + children * (1 + grandchildren)), full.offers, full.prices, full.stock, delta.offers,
                delta.prices, delta.stock);
    std::printf("import_bytes=%ju\noffers_bytes=%ju\ndelta_bytes=%ju\n", fs::file_size(out / "import.xml"),
                fs::file_size(out / "offers.xml"), fs::file_size(out / "offers_delta.xml"));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "generate_catalog: %s\n", e.what());
    return 1;
  }
  return 0;
}
