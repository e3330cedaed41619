#pragma once
// The canonical order model: what travels between the portal and an ERP about orders,
// counterparties and the documents the ERP creates for an order (invoice, shipment, payment).
// Wire-neutral (CommerceML writer/reader and the МойСклад adapter both use it). Money and
// quantities are exact decimal text (see model/catalog.hpp); dates are "YYYY-MM-DD", times
// "HH:MM:SS", both in the ERP's local time as 1C writes them.
#include <optional>
#include <string>
#include <vector>

#include "model/catalog.hpp"

namespace obmen::model {

struct address {                       // АдресРегистрации / ЮридическийАдрес / Адрес
  std::string presentation;            // Представление
  std::vector<requisite> fields;       // АдресноеПоле{Тип, Значение} as name/value
};

struct contact {                       // Контакты/Контакт{Тип | КонтактВид, Значение}
  std::string type;                    // "Почта", "ТелефонРабочий", "Электронная почта" …
  std::string value;
};

struct representative {                // Представители/Представитель
  std::string relation;                // Отношение ("Контактное лицо")
  std::string external_id;
  std::string name;
};

struct counterparty {                  // Контрагенты/Контрагент
  std::string external_id;             // Ид (1C's, or the portal's guid for new ones)
  std::string name;                    // Наименование
  std::string role;                    // Роль: Покупатель | Продавец | Плательщик | Получатель
  std::string full_name;               // ПолноеНаименование (persons, and legal entities in 2.03)
  std::string official_name;           // ОфициальноеНаименование (legal entities)
  std::string last_name, first_name, middle_name;  // Фамилия, Имя, Отчество (persons)
  std::string inn, kpp, okpo;          // ИНН, КПП, КодПоОКПО
  bool legal_entity = true;            // false: a person (has Фамилия/Имя, no ОфициальноеНаименование)
  address legal_address;               // ЮридическийАдрес / АдресРегистрации
  address postal_address;              // Адрес
  std::vector<contact> contacts;
  std::vector<representative> representatives;
  bool active = true;                  // false on ПометкаУдаления=true
  std::string version;                 // НомерВерсии
  // Terms the ERP keeps for the customer (МойСклад: priceType, owner; 1C's CommerceML carries
  // neither). Empty = not carried: the portal keeps what it has.
  std::string price_type_id;           // the ERP's id of the customer's price type (segment)
  std::string manager_id;              // the ERP's id of the responsible employee …
  std::string manager;                 // … and their name (filled by the adapter when it can)
};

struct order_line {                    // Товары/Товар
  std::string offer_external_id;       // Ид: the offer's 1C id ("product#characteristic" for variants)
  std::string sku;                     // Артикул
  std::string name;
  std::string unit;                    // БазоваяЕдиница text ("шт")
  std::string unit_code;               // БазоваяЕдиница/@Код ("796")
  decimal price;                       // ЦенаЗаЕдиницу
  decimal quantity;                    // Количество
  decimal amount;                      // Сумма
  decimal discount;                    // Скидки/Скидка/Сумма total, empty = none
  std::string item_kind = "Товар";     // ЗначенияРеквизитов ВидНоменклатуры
  std::string item_type = "Товар";     // ЗначенияРеквизитов ТипНоменклатуры: Товар | Услуга
  bool service = false;                // delivery and other services (ORDER_DELIVERY)
  std::vector<requisite> requisites;   // any other line requisites as received
};

// One CommerceML Документ: an order (ХозОперация "Заказ товара") or a document 1C created
// for one (payment, shipment, invoice …).
struct document {
  std::string external_id;             // Ид
  std::string number;                  // Номер
  std::string date;                    // Дата, "YYYY-MM-DD"
  std::string time;                    // Время, "HH:MM:SS", may be empty
  std::string operation;               // ХозОперация: "Заказ товара", "Отпуск товара", "Счет на оплату" …
  std::string role = "Продавец";       // Роль
  std::string currency = "RUB";        // Валюта
  decimal rate = "1";                  // Курс
  decimal total;                       // Сумма
  std::string comment;                 // Комментарий
  std::string version;                 // НомерВерсии
  bool deleted = false;                // ПометкаУдаления=true
  std::string erp_number, erp_date;    // Номер1С, Дата1С (1C → site)
  std::string base_document;           // ОснованиеДокумента / the order's Номер or Ид it refers to
  std::vector<counterparty> counterparties;
  std::vector<order_line> lines;
  std::vector<requisite> requisites;   // ЗначенияРеквизитов: "Статус заказа", "Дата оплаты по 1С" …
  std::vector<document> subordinates;  // 2.10 ПодчиненныеДокументы and 3.x Контейнер siblings
};

}  // namespace obmen::model
