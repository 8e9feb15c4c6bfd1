#!/usr/bin/env python
"""For developers: measure the aligners' word-start accuracy on speech whose true timings are known.

espeak-ng (libespeak-ng bundled by espeakng-loader) speaks each sentence and
reports a word event with the exact sample where each word starts. Events
can skip words, so they are matched to our tokens by text position, and
tokens without an event are left out of the figures. The test speech is
spoken in a voice variant, rate and pitch (TEST_VOICE) other than the
rendering the dtw aligner warps onto (the language's default voice at a
matched rate), so dtw does not meet its own reference. The aligner runs
through ``f5_worker.alignment.quality.align_audio``, the same call the
``align`` action makes.

    uv run python scripts/bench/eval_alignment.py [--language en|fr|de|es|it|pt|all]
        [--method sphinx|dtw|estimate|ctc|auto|all] [--held-out] [--limit N] [--json FILE]

``--method all`` runs every method that applies: sphinx for English only, ctc
only where its weights are cached. ``--held-out`` measures the sentences kept
out of development instead.

Changes: nothing but the --json report, where told.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from f5_worker.alignment import espeak
from f5_worker.alignment.ctc import CtcAligner, find_weights
from f5_worker.alignment.dtw import espeak_voice
from f5_worker.alignment.quality import align_audio
from f5_worker.alignment.selection import load_aligner
from f5_worker.text.tokens import tokenize

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.",
    "We also need a small plastic snake and a big toy frog for the kids.",
    "Doctor Smith arrived at the hospital at 7 in the morning.",
    "In 1999, the company had 250 employees; today it has 4000.",
    "The meeting starts at 10:30 on the 21st of March.",
    "Mr. Johnson and Mrs. Patel flew from London to Tokyo last Tuesday.",
    "Is this the right way to the station? I think so!",
    "Wait... did you hear that noise?",
    "The temperature dropped to 3.5 degrees overnight.",
    "Alice, Bob, and Charlie went to the market together.",
    "He said, \"I will never forget this day.\"",
    "Our team scored 42 points in the first half and 17 in the second.",
    "Elizabeth Warren met Barack Obama in Washington.",
    "The library opens at nine and closes at five.",
    "Could you pass me the salt, please?",
    "Rain, wind, and snow: the mountain saw it all.",
    "Katherine bought 12 apples, 7 oranges, and 3 melons.",
    "The speed of light is about 300000 kilometers per second.",
    "Professor Nguyen teaches physics at the university.",
    "Nobody expected the river to flood so quickly.",
    "The 3rd chapter is the longest one in the book.",
    "Turn left at the second light, then go straight for 2 miles.",
    "My phone number ends in 4 5 6 7.",
    "Paris, Berlin, Madrid, and Rome are European capitals.",
    "The concert was amazing; the crowd sang every song.",
    "Jennifer's dog barked at the mailman again.",
    "We don't know where they're going, but they'll be back soon.",
    "Thomas Edison held more than 1000 patents.",
    "Keep calm and carry on.",
    "Why would anyone leave such a beautiful place?",
    "The recipe calls for 2 cups of flour and 1 egg.",
    "Mount Everest is 8849 meters tall.",
    "Sarah whispered something, and everyone laughed.",
    "The train to Edinburgh leaves from platform 9.",
    "Honestly, I never liked winter very much.",
    "Gabriel Garcia Marquez wrote wonderful novels.",
    "Each student received a certificate and a small gift.",
    "Stop! Don't touch that button.",
    "The price rose by 15 percent in 2021.",
    "Oliver and Sophia are planning a trip to Iceland.",
    "Bright stars filled the clear night sky.",
    "A thousand tiny lights flickered across the valley.",
    "Our flight was delayed by 45 minutes because of fog.",
    "William Shakespeare was born in 1564.",
    "Michelle counted to 20 and then opened her eyes.",
    "Yes, no, maybe: those were the only answers.",
    "The old lighthouse still guides ships home at night.",
    "Listen carefully, because I will only say this once.",
    "Fourteen ducks swam slowly across the pond.",
]

PARAGRAPH = (
    "Long before the first railway crossed the plains, small towns grew wherever water and trade could be found. "
    "Farmers brought grain to the markets each autumn, and merchants from distant cities arrived with cloth, tools, "
    "and news. In 1869, when the tracks finally connected the two coasts, the journey that once took months could be "
    "made in about a week. Some towns flourished almost overnight; others, bypassed by the line, slowly faded away. "
    "Historians still argue about who benefited most, but nobody doubts that the country was changed forever."
)

CORPUS = SENTENCES + [PARAGRAPH]

# Sentences per language for the measurement (English: SENTENCES and PARAGRAPH above).
LANGUAGE_SENTENCES = {
    "fr": [
        "Le petit chat dort tranquillement sur le canapé du salon.",
        "Nous irons au marché demain matin, s'il ne pleut pas.",
        "Pourquoi as-tu laissé la porte ouverte ?",
        "Marie a trouvé un vieux livre dans le grenier de sa grand-mère.",
        "Le train pour Lyon partira avec vingt minutes de retard.",
        "En 1998, la France a gagné la Coupe du monde.",
        "Il y a 365 jours dans une année ordinaire.",
        "Les feuilles tombent des arbres à l'automne.",
        "Écoute bien : je ne le répéterai pas deux fois.",
        "Jean-Pierre et Sophie se sont mariés au printemps.",
        "La tour Eiffel mesure environ trois cents mètres.",
        "Quel temps fera-t-il ce week-end à la montagne ?",
        "Mon voisin joue du piano tous les soirs après le dîner.",
        "Il faut acheter du pain, du beurre et des œufs.",
        "Le musée ferme ses portes à dix-huit heures.",
        "Les étudiants ont révisé toute la nuit pour l'examen.",
        "Arrête ! Tu vas réveiller le bébé.",
        "Nous avons vu des dauphins au large de la Bretagne.",
        "Cette recette demande 250 grammes de farine.",
        "Le médecin lui a conseillé de se reposer quelques jours.",
        "Où se trouve la bibliothèque municipale, s'il vous plaît ?",
        "Hier soir, l'orage a coupé l'électricité dans tout le quartier.",
        "Le renard rusé s'approcha doucement du poulailler.",
        "Paul travaille dans une banque depuis douze ans.",
        "Je préfère le thé au café, surtout le matin.",
        "La conférence commencera à 9 h 30 précises.",
        "Les montagnes étaient couvertes d'une neige épaisse.",
        "Elle chantait une vieille chanson en épluchant les légumes.",
        "Combien coûte ce manteau bleu dans la vitrine ?",
        "Nous partirons en vacances au bord de la mer en juillet.",
    ],
    "de": [
        "Der alte Mann ging langsam über die schmale Brücke.",
        "Morgen fahren wir mit dem Zug nach München.",
        "Kannst du mir bitte das Salz reichen?",
        "Im Jahr 1989 fiel die Berliner Mauer.",
        "Die Kinder spielen im Garten Fußball.",
        "Unser Hund bellt jeden Morgen den Briefträger an.",
        "Das Konzert beginnt um acht Uhr abends.",
        "Ich habe 42 Euro für die neuen Schuhe bezahlt.",
        "Warum ist der Himmel heute so grau?",
        "Anna und Peter wohnen seit drei Jahren in Wien.",
        "Der Rhein ist einer der längsten Flüsse Europas.",
        "Nach dem Essen gehen wir im Park spazieren.",
        "Halt! Du hast deinen Regenschirm vergessen.",
        "Die Lehrerin erklärte die Aufgabe noch einmal geduldig.",
        "Auf dem Markt kaufen wir Äpfel, Birnen und Käse.",
        "Es schneite die ganze Nacht in den Alpen.",
        "Mein Großvater erzählt gern Geschichten aus seiner Jugend.",
        "Der Flug nach Berlin wurde wegen Nebels gestrichen.",
        "Wie viele Sprachen sprichst du eigentlich?",
        "Das Rathaus steht mitten auf dem Marktplatz.",
        "Sie las den Brief dreimal, bevor sie antwortete.",
        "Die Brücke wurde im Jahr 1875 gebaut.",
        "Wir brauchen noch Milch, Brot und ein paar Eier.",
        "Der Fuchs schlich leise durch den dunklen Wald.",
        "Mein Bruder arbeitet als Ingenieur in Stuttgart.",
        "Bitte schließen Sie die Tür hinter sich.",
        "Im Herbst färben sich die Blätter rot und gelb.",
        "Das Museum ist montags geschlossen.",
        "Die Katze schläft am liebsten auf dem warmen Ofen.",
        "Um halb sieben klingelte endlich das Telefon.",
    ],
    "es": [
        "El perro duerme tranquilo bajo la mesa de la cocina.",
        "Mañana iremos a la playa si hace buen tiempo.",
        "¿Dónde está la estación de autobuses?",
        "María encontró una carta antigua en el desván.",
        "El tren a Madrid saldrá con media hora de retraso.",
        "En 1992, Barcelona organizó los Juegos Olímpicos.",
        "Un año normal tiene 365 días.",
        "Las hojas caen de los árboles en otoño.",
        "¡Escucha bien, porque no lo repetiré!",
        "Juan y Lucía se casaron en primavera.",
        "La catedral tiene más de quinientos años.",
        "¿Qué tiempo hará este fin de semana en la sierra?",
        "Mi vecino toca la guitarra todas las noches.",
        "Hay que comprar pan, mantequilla y huevos.",
        "El museo cierra sus puertas a las seis de la tarde.",
        "Los estudiantes repasaron toda la noche para el examen.",
        "Para ya, vas a despertar al bebé.",
        "Vimos delfines cerca de la costa de Galicia.",
        "La receta pide 200 gramos de harina.",
        "El médico le aconsejó descansar unos días.",
        "Perdone, ¿sabe dónde está la biblioteca?",
        "Anoche la tormenta cortó la luz en todo el barrio.",
        "El zorro se acercó despacio al gallinero.",
        "Pablo trabaja en un banco desde hace doce años.",
        "Prefiero el té al café, sobre todo por la mañana.",
        "La conferencia empezará a las nueve y media.",
        "Las montañas estaban cubiertas de nieve espesa.",
        "Ella cantaba una canción antigua mientras pelaba patatas.",
        "¿Cuánto cuesta ese abrigo azul del escaparate?",
        "En julio nos iremos de vacaciones al mar.",
    ],
    "it": [
        "Il gatto dorme tranquillo sul divano del salotto.",
        "Domani andremo al mercato se non piove.",
        "Perché hai lasciato la finestra aperta?",
        "Giulia ha trovato un vecchio libro in soffitta.",
        "Il treno per Roma partirà con venti minuti di ritardo.",
        "Nel 2006 l'Italia vinse la Coppa del Mondo.",
        "Un anno normale ha 365 giorni.",
        "Le foglie cadono dagli alberi in autunno.",
        "Ascolta bene: non lo ripeterò due volte.",
        "Marco e Francesca si sono sposati in primavera.",
        "Il Colosseo ha quasi duemila anni.",
        "Che tempo farà questo fine settimana in montagna?",
        "Il mio vicino suona il pianoforte ogni sera.",
        "Bisogna comprare pane, burro e uova.",
        "Il museo chiude alle sei del pomeriggio.",
        "Gli studenti hanno studiato tutta la notte per l'esame.",
        "Basta! Svegli il bambino.",
        "Abbiamo visto dei delfini al largo della Sardegna.",
        "La ricetta richiede 300 grammi di farina.",
        "Il medico gli ha consigliato di riposare qualche giorno.",
        "Scusi, sa dov'è la biblioteca comunale?",
        "Ieri sera il temporale ha tolto la corrente in tutto il quartiere.",
        "La volpe si avvicinò piano al pollaio.",
        "Paolo lavora in banca da dodici anni.",
        "Preferisco il tè al caffè, soprattutto la mattina.",
        "La conferenza inizierà alle nove e mezza.",
        "Le montagne erano coperte di neve fresca.",
        "Lei cantava una vecchia canzone mentre sbucciava le patate.",
        "Quanto costa quel cappotto blu in vetrina?",
        "A luglio andremo in vacanza al mare.",
    ],
    "pt": [
        "O gato dorme tranquilo no sofá da sala.",
        "Amanhã vamos ao mercado se não chover.",
        "Porque deixaste a janela aberta?",
        "A Joana encontrou um livro antigo no sótão.",
        "O comboio para Lisboa vai partir com vinte minutos de atraso.",
        "Em 1998, Lisboa recebeu a Exposição Mundial.",
        "Um ano normal tem 365 dias.",
        "As folhas caem das árvores no outono.",
        "Ouve bem: não vou repetir.",
        "O Pedro e a Marta casaram-se na primavera.",
        "O mosteiro tem mais de quinhentos anos.",
        "Que tempo vai fazer este fim de semana na serra?",
        "O meu vizinho toca guitarra todas as noites.",
        "É preciso comprar pão, manteiga e ovos.",
        "O museu fecha às seis da tarde.",
        "Os estudantes estudaram a noite toda para o exame.",
        "Para com isso! Vais acordar o bebé.",
        "Vimos golfinhos perto da costa do Algarve.",
        "A receita pede 250 gramas de farinha.",
        "O médico aconselhou-o a descansar alguns dias.",
        "Desculpe, sabe onde fica a biblioteca municipal?",
        "Ontem à noite a tempestade cortou a luz em todo o bairro.",
        "A raposa aproximou-se devagar do galinheiro.",
        "O Paulo trabalha num banco há doze anos.",
        "Prefiro chá a café, sobretudo de manhã.",
        "A conferência começa às nove e meia.",
        "As montanhas estavam cobertas de neve espessa.",
        "Ela cantava uma canção antiga enquanto descascava batatas.",
        "Quanto custa aquele casaco azul da montra?",
        "Em julho vamos de férias para a praia.",
    ],
}

# Sentences kept out of development: measured once, at the end.
HELD_OUT = {
    "en": [
        "The fisherman mended his nets while the gulls circled overhead.",
        "Did anyone remember to lock the back door last night?",
        "Twenty-three volunteers planted 480 trees along the river.",
        "Margaret's cousin moved to Vancouver in 2015.",
        "Quiet, please: the exam begins in five minutes.",
        "A gentle breeze carried the scent of pine through the open window.",
        "He paid $18.75 for two tickets and a bag of popcorn.",
        "Under the bridge, a pair of otters played in the current.",
        "Nobody could explain why the clock stopped at midnight.",
        "Bring a jacket, some water, and a map of the trail.",
        "The committee postponed its decision until next spring.",
        "Grandfather told stories about the winter of 1947.",
    ],
    "fr": [
        "Le boulanger ouvre sa boutique avant le lever du soleil.",
        "Avez-vous déjà visité le musée d'Orsay ?",
        "Nous avons parcouru 35 kilomètres à vélo dimanche dernier.",
        "La pluie tombait doucement sur les toits de la vieille ville.",
        "Mon frère cherche un appartement près de la gare.",
        "Attention : le dernier train part à 23 heures.",
        "Les enfants jouaient dans le jardin pendant que leurs parents discutaient.",
        "Elle a acheté trois kilos de pommes et une bouteille de cidre.",
        "Pourquoi le chien aboie-t-il toutes les nuits ?",
        "Victor Hugo est né à Besançon en 1802.",
        "Le vent du nord a soufflé toute la semaine.",
        "Il faut arroser les tomates le soir, pas à midi.",
    ],
    "de": [
        "Der Bäcker öffnet seinen Laden schon um fünf Uhr morgens.",
        "Hast du den Schlüssel für den Keller gesehen?",
        "Im Sommer wandern wir gern durch die Berge Tirols.",
        "Die Bibliothek hat mehr als 20000 Bücher.",
        "Meine Schwester lernt seit zwei Jahren Geige.",
        "Vorsicht: Die Straße ist nach dem Regen sehr glatt.",
        "Am Wochenende besuchen wir unsere Großeltern in Hamburg.",
        "Warum hat niemand das Fenster geschlossen?",
        "Der Zug nach Köln hat heute zwanzig Minuten Verspätung.",
        "Goethe schrieb den Faust über viele Jahre hinweg.",
        "Kinder, räumt bitte euer Zimmer auf!",
        "Ein kleiner Vogel saß auf dem Zaun und sang.",
    ],
    "es": [
        "El panadero abre la tienda antes del amanecer.",
        "¿Has visto mis gafas encima de la mesa?",
        "Caminamos 12 kilómetros por la orilla del río.",
        "La abuela prepara una paella deliciosa los domingos.",
        "Cuidado: el suelo de la cocina está mojado.",
        "Los niños corrían por la plaza mientras sonaban las campanas.",
        "Miguel de Cervantes publicó su novela en 1605.",
        "Necesitamos pan, leche, huevos y un poco de queso.",
        "¿Por qué nadie contestó el teléfono esta mañana?",
        "El tren hacia Sevilla sale del andén número tres.",
        "Mi hermana estudia medicina en la universidad de Granada.",
        "Una tormenta repentina cubrió el valle de niebla.",
    ],
    "it": [
        "Il fornaio apre il negozio prima dell'alba.",
        "Hai visto le chiavi della macchina?",
        "Abbiamo camminato per 18 chilometri lungo la costa.",
        "La nonna prepara le lasagne ogni domenica.",
        "Attenzione: il pavimento del bagno è bagnato.",
        "I bambini giocavano in piazza mentre suonavano le campane.",
        "Dante Alighieri nacque a Firenze nel 1265.",
        "Ci servono pane, latte, uova e un po' di formaggio.",
        "Perché nessuno ha risposto al telefono stamattina?",
        "Il treno per Napoli parte dal binario quattro.",
        "Mio fratello studia ingegneria al politecnico di Milano.",
        "Un temporale improvviso coprì la valle di nebbia.",
    ],
    "pt": [
        "O padeiro abre a loja antes do nascer do sol.",
        "Viste os meus óculos em cima da mesa?",
        "Caminhámos 15 quilómetros ao longo da praia.",
        "A avó prepara um bacalhau delicioso todos os domingos.",
        "Cuidado: o chão da cozinha está molhado.",
        "As crianças corriam pela praça enquanto os sinos tocavam.",
        "Luís de Camões publicou Os Lusíadas em 1572.",
        "Precisamos de pão, leite, ovos e um pouco de queijo.",
        "Porque é que ninguém atendeu o telefone esta manhã?",
        "O comboio para o Porto parte da linha número dois.",
        "A minha irmã estuda medicina na universidade de Coimbra.",
        "Uma tempestade repentina cobriu o vale de nevoeiro.",
    ],
}

LANGUAGES = ("en", "fr", "de", "es", "it", "pt")
METHODS = ("sphinx", "dtw", "estimate", "ctc", "auto")
# The test speech's voice: a female variant, slower and lower than espeak-ng's defaults (175 wpm, pitch 50),
# which the dtw aligner's reference uses.
TEST_VOICE = {"variant": "f3", "rate_wpm": 140, "pitch": 30}


def corpus(language: str, held_out: bool = False) -> list[str]:
    if held_out:
        return HELD_OUT[language]
    return CORPUS if language == "en" else LANGUAGE_SENTENCES[language]


@dataclass
class Case:
    text: str
    audio: np.ndarray
    sample_rate: int
    truth: dict[int, float]  # token index -> true start (s)
    language: str = "en"


def make_case(text: str, language: str = "en", *, variant: str | None = None,
              rate_wpm: int = espeak.DEFAULT_RATE_WPM, pitch: int = espeak.DEFAULT_PITCH) -> Case:
    """Speak ``text`` and take each token's true start from the word event at its first letter."""
    voice = espeak_voice(language) + (f"+{variant}" if variant else "")
    audio, sr, events = espeak.synthesize(text, voice=voice, rate_wpm=rate_wpm, pitch=pitch)
    at_position: dict[int, float] = {}
    for ev in events:
        at_position.setdefault(ev.text_position, ev.sample / sr)
    truth = {}
    for i, tok in enumerate(tokenize(text, language)):
        first = next((p for p in range(tok.char_start, tok.char_end) if text[p].isalnum()), None)
        if tok.spoken and first is not None and first in at_position:
            truth[i] = at_position[first]
    return Case(text, audio, sr, truth, language)


def evaluate(aligner, cases: list[Case]) -> dict:
    errors: list[float] = []
    signed: list[float] = []
    align_s = cpu_s = audio_s = 0.0
    worst: list[tuple[float, str, str]] = []
    for case in cases:
        t0, c0 = time.perf_counter(), time.thread_time()
        result = align_audio(aligner, case.audio, case.sample_rate, case.text, language=case.language)
        align_s += time.perf_counter() - t0
        cpu_s += time.thread_time() - c0
        audio_s += len(case.audio) / case.sample_rate
        for i, true_start in case.truth.items():
            signed.append(result.words[i].start - true_start)
            err = abs(signed[-1])
            errors.append(err)
            worst.append((err, result.words[i].text, case.text[:40]))
    err = np.array(errors)
    worst.sort(reverse=True)
    return {
        "words": int(len(err)),
        "sentences": len(cases),
        "mean_abs_ms": round(float(err.mean() * 1000), 2) if len(err) else None,
        "median_abs_ms": round(float(np.median(err) * 1000), 2) if len(err) else None,
        "p90_abs_ms": round(float(np.percentile(err, 90) * 1000), 2) if len(err) else None,
        "mean_signed_ms": round(float(np.mean(signed) * 1000), 2) if signed else None,
        "within_20ms": round(float((err <= 0.020).mean() * 100), 2) if len(err) else None,
        "within_50ms": round(float((err <= 0.050).mean() * 100), 2) if len(err) else None,
        "align_rtf": round(align_s / audio_s, 4) if audio_s else None,
        # CPU time of the aligning thread: the one-core cost even when other work shares the machine.
        "align_cpu_rtf": round(cpu_s / audio_s, 4) if audio_s else None,
        "audio_seconds": round(audio_s, 2),
        "backend": getattr(aligner, "name", "?"),
        "language": cases[0].language if cases else None,
        "worst": [{"error_ms": round(e * 1000, 1), "word": w, "sentence": s} for e, w, s in worst[:10]],
    }


def methods_for(language: str, asked: str) -> list[str]:
    """The methods ``--method`` names for a language: sphinx is English only, ctc needs cached weights."""
    if asked != "all":
        return [asked]
    found = [m for m in ("sphinx", "dtw", "estimate") if m != "sphinx" or language == "en"]
    if find_weights(None, "en" if language == "en" else "mul"):
        found.append("ctc")
    return found


def aligner_for(method: str, language: str):
    if method == "ctc" and language != "en":
        return CtcAligner(multilingual=True)
    return load_aligner(method)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", "--aligner", dest="method", default="sphinx", choices=METHODS + ("all",),
                        help="the aligner to measure, or all that apply (default sphinx)")
    parser.add_argument("--language", default="en", choices=LANGUAGES + ("all",),
                        help="the sentences' language, or all six (default en)")
    parser.add_argument("--held-out", action="store_true", help="the sentences kept out of development")
    parser.add_argument("--limit", type=int, default=None, help="only the first N sentences (the paragraph is last)")
    parser.add_argument("--json", dest="json_path", help="write the figures to this file")
    parser.add_argument("--threads", type=int, default=1, help="CPU cores to use (default 1, as the target states)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if hasattr(os, "sched_setaffinity") and args.threads == 1:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    results = []
    for language in LANGUAGES if args.language == "all" else (args.language,):
        texts = corpus(language, args.held_out)
        texts = texts[: args.limit] if args.limit else texts
        cases = [make_case(t, language, **TEST_VOICE) for t in texts]
        for method in methods_for(language, args.method):
            aligner = aligner_for(method, language)
            align_audio(aligner, cases[0].audio, cases[0].sample_rate, cases[0].text, language=language)  # warm-up
            figures = evaluate(aligner, cases)
            figures["method"] = method
            results.append(figures)
            print(f"{language} {method} (backend {figures['backend']}): {figures['words']} words in "
                  f"{figures['sentences']} utterances, {figures['audio_seconds']} s of audio")
            print(f"  mean abs start error {figures['mean_abs_ms']} ms (median {figures['median_abs_ms']} ms, "
                  f"p90 {figures['p90_abs_ms']} ms)")
            print(f"  within 20 ms: {figures['within_20ms']} %   within 50 ms: {figures['within_50ms']} %")
            print(f"  align_rtf: {figures['align_rtf']} (wall clock; "
                  f"CPU time of the aligning thread: {figures['align_cpu_rtf']})")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"held_out": args.held_out, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
