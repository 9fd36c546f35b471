#!/usr/bin/env python3
"""describe.py: the shipped planner tools, as SQL.

Reads catalog/tool-catalog.json (the product's propose-tool catalog: names,
modules, parameter facts) and adds what it leaves out, in German as the
product speaks it: one line per tool saying what it does for the user, and
one per parameter.  Prints the INSERT of the shipped mana_ai.tools rows that
sql/install/55_tool_catalog.sql holds and sql/mana_ai--0.1.0--0.2.0.sql
repeats:

    python3 catalog/describe.py             # the fresh install's INSERT
    python3 catalog/describe.py --upgrade   # the upgrade's: skips names a DBA took

Parameter names, types, required flags and enums are copied, never edited:
the web app executes an approved proposal by exactly these names.
"""
import json
import os
import sys

TOOLS = {
    "create_task": "Legt eine neue Aufgabe in der Todo-Liste an.",
    "complete_task": "Hakt eine bestimmte offene Aufgabe als erledigt ab.",
    "complete_tasks_by_title": "Hakt alle offenen Aufgaben ab, deren Titel den Suchtext enthält.",
    "create_event": "Trägt einen Termin mit Beginn und Ende in den Kalender ein.",
    "create_note": "Schreibt eine neue Notiz.",
    "update_note": "Ändert Titel oder Inhalt einer bestehenden Notiz.",
    "append_to_note": "Hängt Text an das Ende einer bestehenden Notiz an.",
    "add_tag_to_note": "Versieht eine Notiz mit einem Schlagwort.",
    "create_place": "Speichert einen Ort mit Koordinaten in der Ortesammlung.",
    "visit_place": "Vermerkt, dass der Nutzer einen gespeicherten Ort besucht hat.",
    "undo_drink": "Nimmt den zuletzt erfassten Drink wieder aus dem Tagesprotokoll.",
    "save_news_article": "Legt einen Nachrichtenartikel in der Leseliste ab.",
    "save_article": "Speichert einen Artikel aus dem Netz zum späteren Lesen.",
    "archive_article": "Verschiebt einen gelesenen Artikel ins Archiv.",
    "tag_article": "Versieht einen gespeicherten Artikel mit einem Schlagwort.",
    "add_article_highlight": "Markiert eine Textstelle in einem Artikel, wahlweise mit Notiz.",
    "research_news": "Sucht aktuelle Nachrichten zu einem Thema zusammen.",
    "create_journal_entry": "Schreibt einen Tagebucheintrag, wahlweise mit Stimmung.",
    "create_habit": "Legt eine neue Gewohnheit an, die der Nutzer täglich abhaken kann.",
    "log_habit": "Hakt eine Gewohnheit für heute ab.",
    "create_goal": "Setzt ein neues Ziel, aus einer Vorlage oder frei beschrieben.",
    "pause_goal": "Pausiert ein laufendes Ziel, ohne den Fortschritt zu verlieren.",
    "resume_goal": "Setzt ein pausiertes Ziel fort.",
    "complete_goal": "Schließt ein Ziel als erreicht ab.",
    "create_contact": "Legt einen neuen Kontakt im Adressbuch an.",
    "log_mood": "Hält die aktuelle Stimmung mit Stärke und Gefühl fest.",
    "add_transaction": "Bucht eine Einnahme oder Ausgabe im Haushaltsbuch.",
    "start_timer": "Startet die Zeiterfassung, wahlweise für ein Projekt.",
    "stop_timer": "Hält die laufende Zeiterfassung an.",
    "suggest_event": "Schlägt dem Nutzer eine gefundene Veranstaltung vor.",
    "create_quiz": "Legt ein neues Quiz an.",
    "update_quiz": "Ändert Titel, Beschreibung oder Status eines Quiz.",
    "add_quiz_question": "Fügt einem Quiz eine Frage mit Antwortmöglichkeiten hinzu.",
    "update_quiz_question": "Ändert eine bestehende Quizfrage.",
    "delete_quiz_question": "Entfernt eine Frage aus einem Quiz.",
    "create_invoice": "Erstellt einen Rechnungsentwurf mit Positionen für einen Kunden.",
    "mark_invoice_paid": "Vermerkt eine Rechnung als bezahlt.",
    "create_library_entry": "Nimmt ein Buch, einen Film, eine Serie oder einen Comic in die Bibliothek auf.",
    "update_library_entry_status": "Ändert den Lesestand oder Schaustand eines Bibliothekseintrags.",
    "rate_library_entry": "Bewertet einen Eintrag der Bibliothek.",
    "create_campaign_draft": "Entwirft eine E-Mail-Kampagne, die der Nutzer vor dem Versand prüft.",
    "create_website": "Legt eine neue, leere Website an.",
    "apply_website_template": "Erstellt eine Website aus einer Vorlage.",
    "create_website_page": "Fügt einer Website eine neue Seite hinzu.",
    "add_website_block": "Setzt einen Inhaltsblock auf eine Seite der Website.",
    "update_website_block": "Ändert die Eigenschaften eines Inhaltsblocks.",
    "publish_website": "Veröffentlicht den aktuellen Stand einer Website.",
    "create_draft": "Legt einen Schreibentwurf mit Thema, Zielgruppe und Ton an.",
    "generate_draft_content": "Lässt den Text eines Schreibentwurfs ausformulieren.",
    "refine_draft_selection": "Überarbeitet einen markierten Abschnitt eines Entwurfs.",
    "set_draft_status": "Setzt den Bearbeitungsstand eines Entwurfs.",
    "save_draft_as_article": "Übernimmt einen fertigen Entwurf als Artikel.",
    "create_comic_story": "Beginnt eine neue Comic-Geschichte in einem Zeichenstil.",
    "generate_comic_panel": "Zeichnet ein neues Bild für eine Comic-Geschichte.",
    "create_comic_character": "Legt eine neue Comicfigur an.",
    "generate_character_variant": "Zeichnet neue Varianten einer Comicfigur.",
    "pin_character_variant": "Legt eine Variante als maßgebliches Aussehen der Figur fest.",
    "capture_sign": "Hält ein Omen, eine Weissagung oder eine Ahnung fest, um sie später zu prüfen.",
    "resolve_sign": "Vermerkt, ob sich ein festgehaltenes Zeichen erfüllt hat.",
    "create_last": "Hält ein \"letztes Mal\" fest, das dem Nutzer wichtig ist.",
    "confirm_last": "Bestätigt ein vermutetes letztes Mal und hält fest, was es bedeutet.",
    "reclaim_last": "Vermerkt, dass der Nutzer etwas wieder aufgenommen hat.",
}

# By parameter name; (tool, name) overrides where a name means something
# else in one tool.
PARAMS = {
    "activity": "Was der Nutzer gerade tut", "addPrompt": "Zusätzliche Zeichenanweisung für die Figur",
    "address": "Postanschrift", "amount": "Betrag in der Landeswährung", "articleId": "ID des Artikels",
    "audience": "Zielgruppe des Textes", "blockId": "ID des Inhaltsblocks", "caption": "Bildunterschrift",
    "category": "Kategorie", "characterId": "ID der Comicfigur", "claim": "Was das Zeichen vorhersagt",
    "clientAddress": "Anschrift des Kunden", "clientEmail": "E-Mail-Adresse des Kunden",
    "clientName": "Name des Kunden", "color": "Farbe", "company": "Firma",
    "comparison": "Ziel erreicht bei mindestens (gte) oder höchstens (lte) dem Zielwert",
    "confidence": "Wie sicher es das letzte Mal war", "content": "Text (Markdown erlaubt)",
    "count": "Anzahl", "creators": "Autorinnen, Regie oder Zeichner, kommagetrennt",
    "currency": "Währung", "date": "Datum (ISO-8601, YYYY-MM-DD)", "description": "Beschreibung",
    "dialogue": "Sprechblasentext", "discovered_event_id": "ID der gefundenen Veranstaltung",
    "draftId": "ID des Entwurfs", "dueDate": "Fälligkeitsdatum (ISO-8601, YYYY-MM-DD)",
    "email": "E-Mail-Adresse", "emotion": "Vorherrschendes Gefühl", "endTime": "Ende (ISO-8601 mit Zeitzone)",
    "entryId": "ID des Eintrags", "eventType": "Ereignisart, die auf das Ziel einzahlt",
    "expectedBy": "Bis wann es eintreten soll (ISO-8601)", "expectedOutcome": "Was eintreten soll",
    "explanation": "Erklärung der richtigen Antwort", "extraInstructions": "Weitere Anweisungen an den Schreibassistenten",
    "feltMeaning": "Was das Zeichen für den Nutzer bedeutet", "firstName": "Vorname", "genres": "Genres, kommagetrennt",
    "goalId": "ID des Ziels", "habitId": "ID der Gewohnheit", "htmlContent": "Inhalt der E-Mail als HTML",
    "icon": "Symbol (Emoji oder Icon-Name)", "instruction": "Freie Anweisung zur Überarbeitung",
    "invoiceId": "ID der Rechnung", "isAllDay": "Ganztägiger Termin", "isArchived": "Quiz archivieren",
    "isPinned": "Quiz oben anheften", "kind": "Art", "language": "Sprache (ISO-639-1, z. B. de)",
    "lastId": "ID des letzten Mals", "lastName": "Nachname", "latitude": "Breitengrad in Grad",
    "level": "Stärke der Stimmung von 1 (sehr schlecht) bis 10 (sehr gut)", "limit": "Höchstzahl der Treffer",
    "lines": "Rechnungspositionen: Liste von {description, quantity, unitPrice}", "location": "Ort",
    "longitude": "Längengrad in Grad", "meaning": "Was dieses letzte Mal bedeutet", "model": "Bildmodell",
    "moduleId": "Modul, aus dem die Ereignisse kommen", "mood": "Stimmung", "name": "Name",
    "note": "Notiz", "noteId": "ID der Notiz", "notes": "Notizen", "operation": "Art der Überarbeitung",
    "optionsJson": "Antwortmöglichkeiten als JSON-Text", "outcome": "Wie es ausging",
    "pageId": "ID der Seite", "paidAt": "Zahlungsdatum (ISO-8601)", "panelPrompt": "Was auf dem Bild zu sehen ist",
    "parentBlockId": "ID des umgebenden Blocks", "patch": "Zu ändernde Eigenschaften des Blocks",
    "path": "Pfad der Seite, z. B. /ueber-mich", "period": "Zeitraum, in dem das Ziel gilt", "phone": "Telefonnummer",
    "placeId": "ID des Ortes", "preheader": "Vorschautext im Posteingang", "priority": "Priorität",
    "probability": "Geschätzte Wahrscheinlichkeit von 0 bis 1", "projectId": "ID des Projekts",
    "props": "Eigenschaften des Blocks", "quality": "Bildqualität", "query": "Suchbegriff oder Thema",
    "questionId": "ID der Frage", "questionText": "Fragetext", "quizId": "ID des Quiz",
    "rating": "Bewertung von 1 bis 5", "reason": "Warum das für den Nutzer interessant ist",
    "reclaimedNote": "Wie es dazu kam", "selectionEnd": "Ende der Markierung (Zeichenposition)",
    "selectionStart": "Anfang der Markierung (Zeichenposition)", "siteId": "ID der Website",
    "slotKey": "Platz im umgebenden Block", "slug": "Kurzname in der Adresse der Website",
    "source": "Woher das Zeichen kommt", "sourceCategory": "Art der Quelle", "startTime": "Beginn (ISO-8601 mit Zeitzone)",
    "status": "Status", "storyContext": "Hintergrund der Geschichte", "storyId": "ID der Comic-Geschichte",
    "style": "Zeichenstil", "styleId": "ID eines gespeicherten Schreibstils", "subject": "Betreff",
    "summary": "Kurze Zusammenfassung", "tag": "Schlagwort", "tagName": "Schlagwort", "tags": "Schlagwörter, kommagetrennt",
    "targetLanguage": "Zielsprache beim Übersetzen", "targetTone": "Gewünschter Ton",
    "targetValue": "Zielwert", "targetWords": "Gewünschte Länge in Wörtern", "taskId": "ID der Aufgabe",
    "templateId": "ID der Vorlage", "tenderness": "Wie zärtlich die Erinnerung ist, von 1 bis 5",
    "text": "Markierter Text", "title": "Titel", "titleMatch": "Titel oder Titelteil der Aufgaben",
    "tone": "Ton des Textes", "topic": "Thema", "type": "Art", "url": "Adresse (URL)",
    "variantMediaId": "ID des Varianten-Bildes", "vibe": "Stimmung des Zeichens",
    "whatIKnewThen": "Was der Nutzer damals wusste", "whatIKnowNow": "Was der Nutzer heute weiß",
    "wouldReclaim": "Ob der Nutzer es zurückholen würde", "year": "Erscheinungsjahr",
}
OVERRIDES = {
    ("create_habit", "color"): "Farbe als Hex-Wert, z. B. #4caf50",
    ("add_article_highlight", "color"): "Farbe der Markierung",
    ("add_transaction", "type"): "Einnahme oder Ausgabe",
    ("add_transaction", "description"): "Wofür das Geld war",
    ("add_quiz_question", "type"): "Fragetyp", ("update_quiz_question", "type"): "Fragetyp",
    ("add_website_block", "type"): "Blocktyp",
    ("create_library_entry", "kind"): "Art des Werks", ("create_draft", "kind"): "Textsorte",
    ("capture_sign", "kind"): "Art des Zeichens", ("apply_website_template", "templateId"): "Vorlage der Website",
    ("create_goal", "templateId"): "ID einer Zielvorlage; ohne sie beschreiben title und targetValue das Ziel",
    ("create_place", "name"): "Name des Ortes", ("create_contact", "notes"): "Notizen zum Kontakt",
    ("create_campaign_draft", "name"): "Interner Name der Kampagne", ("create_website", "name"): "Name der Website",
    ("apply_website_template", "name"): "Name der Website", ("create_comic_character", "name"): "Name der Figur",
    ("create_last", "status"): "Vermutet oder bestätigt", ("set_draft_status", "status"): "Neuer Bearbeitungsstand",
    ("create_library_entry", "status"): "Lesestand oder Schaustand",
    ("update_library_entry_status", "status"): "Neuer Lesestand oder Schaustand",
    ("generate_character_variant", "count"): "Anzahl der Varianten (1 bis 4)",
    ("log_habit", "note"): "Notiz zum heutigen Eintrag", ("resolve_sign", "note"): "Notiz zum Ausgang",
    ("create_journal_entry", "content"): "Text des Eintrags", ("create_note", "content"): "Inhalt der Notiz (Markdown erlaubt)",
    ("append_to_note", "content"): "Anzuhängender Text", ("update_note", "content"): "Neuer Inhalt der Notiz",
    ("create_journal_entry", "mood"): "Stimmung des Tages", ("create_last", "category"): "Lebensbereich",
    ("create_place", "category"): "Art des Ortes", ("create_quiz", "category"): "Themengebiet",
    ("update_quiz", "category"): "Themengebiet", ("save_article", "reason"): "Warum der Artikel lesenswert ist",
    ("create_last", "date"): "Wann es das letzte Mal war (ISO-8601)", ("confirm_last", "date"): "Wann es das letzte Mal war (ISO-8601)",
    ("add_transaction", "date"): "Buchungsdatum (ISO-8601, YYYY-MM-DD)", ("create_draft", "language"): "Sprache des Textes (ISO-639-1)",
    ("create_library_entry", "tags"): "Schlagwörter, kommagetrennt",
}


def sql_text(s):
    return "'" + s.replace("'", "''") + "'"


def rows(catalog):
    out = []
    for t in catalog["tools"]:
        params = []
        for p in t["parameters"]:
            q = {"name": p["name"], "type": p["type"], "required": p["required"],
                 "description": OVERRIDES.get((t["name"], p["name"]), PARAMS[p["name"]])}
            if "enum" in p:
                q["enum"] = p["enum"]
            params.append(q)
        body = json.dumps(params, ensure_ascii=False, separators=(", ", ": "))
        out.append("(%s, %s, %s, %s, true)" % (sql_text(t["name"]), sql_text(t["module"]),
                                               sql_text(TOOLS[t["name"]]), sql_text(body)))
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "tool-catalog.json"), encoding="utf-8") as f:
        catalog = json.load(f)
    missing = [t["name"] for t in catalog["tools"] if t["name"] not in TOOLS]
    if missing:
        sys.exit("describe.py: no description for " + ", ".join(missing))
    print("INSERT INTO mana_ai.tools (name, module, description, parameters, shipped)")
    if "--upgrade" in sys.argv[1:]:
        print("SELECT v.name, v.module, v.description, v.parameters::jsonb, v.shipped FROM (VALUES")
        print(",\n".join(rows(catalog)))
        print(") AS v(name, module, description, parameters, shipped)")
        print("WHERE NOT EXISTS (SELECT 1 FROM mana_ai.tools t WHERE t.name = v.name);")
    else:
        print("VALUES")
        print(",\n".join(rows(catalog)) + ";")


main()
